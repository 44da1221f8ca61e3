import assert from 'node:assert/strict'

/** How one request ended, as its sender saw it: a final status, or 0 and why there was none. */
export interface SipOutcome {
  status: number
  /** Why no final response came (status 0): the UA's own cause, such as JsSIP's "Request Timeout". */
  cause?: string
}

export interface TrafficRecord extends SipOutcome {
  what: string
  /** performance.now() when it was sent, and when it ended (NaN while it has not). */
  sentAt: number
  endedAt: number
}

export interface TrafficCounts {
  sent: number
  ok: number
  notFound: number
  unavailable: number
  /** Any other final status (503, 408 from the network, 500...). */
  other: number
  /** No final response at all: the UA gave up (its own timeout, its connection closed under the request), or it is still waiting. */
  noFinal: number
}

/**
 * The requests of a chaos run, each counted by how it ended. `settle` waits (bounded) for those still in
 * flight, and `assertEveryRequestAnswered` fails the test if any request got no final response: a SIP
 * request always gets one, whatever happens to the nodes and to Redis.
 */
export class SipTraffic {
  readonly records: TrafficRecord[] = []
  /** Requests a UA could not put on the wire (its socket was already closing): not sent, so not counted. */
  unsent = 0
  private readonly pending = new Set<Promise<void>>()

  /** Counts a request; resolves with its outcome. */
  async track (what: string, outcome: Promise<SipOutcome>): Promise<SipOutcome> {
    const record: TrafficRecord = { what, status: 0, sentAt: performance.now(), endedAt: Number.NaN }
    this.records.push(record)
    const done = outcome.then((result) => {
      Object.assign(record, result, { endedAt: performance.now() })
    }, (err: unknown) => {
      Object.assign(record, { status: 0, cause: `rejected: ${String(err)}`, endedAt: performance.now() })
    })
    this.pending.add(done)
    await done
    this.pending.delete(done)
    return record
  }

  /** Waits up to `ms` for the requests still in flight; what is left stays counted as unanswered. */
  async settle (ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([Promise.all([...this.pending]), new Promise((resolve) => { timer = setTimeout(resolve, ms) })])
    clearTimeout(timer)
  }

  counts (from = 0, to = Infinity): TrafficCounts {
    const counts: TrafficCounts = { sent: 0, ok: 0, notFound: 0, unavailable: 0, other: 0, noFinal: 0 }
    for (const r of this.records) {
      if (r.sentAt < from || r.sentAt >= to) continue
      counts.sent++
      if (r.status === 200) counts.ok++
      else if (r.status === 404) counts.notFound++
      else if (r.status === 480) counts.unavailable++
      else if (r.status === 0) counts.noFinal++
      else counts.other++
    }
    return counts
  }

  /** The requests that got no final response, with why, for a failure message. */
  unanswered (): TrafficRecord[] {
    return this.records.filter((r) => r.status === 0)
  }

  /** Fails unless every request tracked got a final response. */
  assertEveryRequestAnswered (): void {
    const missing = this.unanswered()
    const shown = missing.slice(0, 10).map((r) => `${r.what} (${Number.isNaN(r.endedAt) ? 'still waiting' : r.cause ?? 'no response'})`)
    assert.equal(missing.length, 0, `${missing.length} of ${this.records.length} requests got no final response: ${shown.join('; ')}`)
  }

  /** One line for a test's diagnostics. */
  static describe (counts: TrafficCounts): string {
    const share = counts.sent === 0 ? 0 : 100 * counts.ok / counts.sent
    return `sent ${counts.sent}: 200 ${counts.ok} (${share.toFixed(2)}%), 404 ${counts.notFound}, 480 ${counts.unavailable}, other ${counts.other}, no final response ${counts.noFinal}`
  }

  /** The whole run in one line, with what never left the UAs. */
  summary (): string {
    return `${SipTraffic.describe(this.counts())}; not sent (the UA's socket closing under it) ${this.unsent}`
  }
}
