import type { SipMessage } from '../sip/message'

/**
 * A message waiting for its way to open again: a request for a user who is moving to another node of the
 * cluster (until the user registers there), or a response for a connection of another node while Redis
 * is away (until it is back).
 */
export interface Parked {
  /** The connection the request came from, or the response is for (`holds` answers for it). */
  source: number
  message: SipMessage
  /** The user a request waits for (`wake`); '' for a response. */
  aor: string
  /** Until when it waits (ms, the lot's clock). */
  until: number
  /** Tries to deliver it again: true when it is done with (delivered, or answered), false to keep waiting. */
  retry: () => Promise<boolean>
  /** Its time is up, or the lot closes: it must be answered now. */
  expire: (why: 'timeout' | 'closing') => void
}

/** How much may wait at once, and how often each is tried again. */
export interface ParkingLimits {
  maxRequests: number
  /** Their size together, as serialized. */
  maxBytes: number
  /** A registration on another node is seen no later than this (ms); one on this node wakes them at once. */
  retryMs: number
}

/** Defaults: a rolling restart of a node with 10,000 users moves them in 2–5 s (README, "Rolling restarts"). */
export const PARKING_LIMITS: ParkingLimits = { maxRequests: 2000, maxBytes: 8 * 1024 * 1024, retryMs: 200 }

interface Entry extends Parked {
  bytes: number
  trying: boolean
}

/**
 * Requests for users who are moving (their node drains, their UA reconnects elsewhere), held until the user
 * registers again, then delivered there; responses held while Redis, their way to another node, is away.
 * Bounded in time (each its `until`) and in memory (`limits`): what does not fit is refused (`hold`
 * returns false) and the caller answers it (or logs it) at once.
 */
export class Parking {
  private readonly entries = new Set<Entry>()
  private readonly bySource = new Map<number, number>()
  /** When a request of each connection last left the lot (delivered or answered): its answer may be on its way. */
  private readonly released = new Map<number, number>()
  private bytes = 0
  private timer: NodeJS.Timeout | null = null

  constructor (private readonly limits: ParkingLimits = PARKING_LIMITS, private readonly now: () => number = Date.now) {}

  /** Parks a message; false when the lot is full. */
  hold (parked: Parked): boolean {
    const bytes = Buffer.byteLength(parked.message.toString())
    if (this.entries.size >= this.limits.maxRequests || this.bytes + bytes > this.limits.maxBytes) return false
    this.entries.add({ ...parked, bytes, trying: false })
    this.bytes += bytes
    this.bySource.set(parked.source, (this.bySource.get(parked.source) ?? 0) + 1)
    this.timer ??= setInterval(() => { this.sweep(null) }, this.limits.retryMs).unref()
    return true
  }

  /** The user registered on this node: its requests are tried now, not at the next round. */
  wake (aor: string): void {
    // After the registration that woke them has been taken in whole.
    setImmediate(() => { this.sweep(aor) })
  }

  /** Whether a request of this connection is waiting. */
  holds (source: number): boolean {
    return this.bySource.has(source)
  }

  /** When a request of this connection last left the lot (ms), or -1: from then on its answer is on its way. */
  releasedAt (source: number): number {
    return this.released.get(source) ?? -1
  }

  get size (): number {
    return this.entries.size
  }

  /** Answers everything still waiting (the server closes) and stops. */
  close (): void {
    this.letGo(null)
  }

  /** Answers now what `source` has waiting (`'closing'`): its connection closes next. All, for null. */
  letGo (source: number | null): void {
    for (const entry of [...this.entries]) {
      if (source !== null && entry.source !== source) continue
      this.remove(entry)
      entry.expire('closing')
    }
  }

  /** Expires those whose time is up and tries the others (only `aor`'s, when given). */
  private sweep (aor: string | null): void {
    const now = this.now()
    // A release is news for one round trip; a minute on, nobody asks.
    for (const [source, at] of this.released) if (now - at > 60_000) this.released.delete(source)
    for (const entry of [...this.entries]) {
      if (entry.trying || (aor !== null && entry.aor !== aor)) continue
      if (now >= entry.until) {
        this.remove(entry)
        entry.expire('timeout')
        continue
      }
      entry.trying = true
      entry.retry().catch(() => false).then((done) => {
        entry.trying = false
        if (done) this.remove(entry)
      }, () => {})
    }
  }

  private remove (entry: Entry): void {
    if (!this.entries.delete(entry)) return
    this.released.set(entry.source, this.now())
    this.bytes -= entry.bytes
    const left = (this.bySource.get(entry.source) ?? 1) - 1
    if (left > 0) this.bySource.set(entry.source, left)
    else this.bySource.delete(entry.source)
    if (this.entries.size === 0 && this.timer !== null) {
      clearInterval(this.timer)
      this.timer = null
    }
  }
}
