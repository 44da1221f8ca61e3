import assert from 'node:assert/strict'
import type { FastifyInstance } from 'fastify'
import type WebSocket from 'ws'
import { until } from './pool'
import { connect, type LogEntry } from './server'

/** One node of the traffic: its app, its URL, and what its logger wrote (warn and above). */
export interface TrafficNode {
  app: FastifyInstance
  url: string
  entries: LogEntry[]
}

export interface TrafficCounts {
  /** wsSend to the other node's connection: what it returned, and what arrived. */
  plain: { sent: number, true: number, false: number, delivered: number }
  /** wsCluster.send: how each settled, what arrived, and trues whose message never did. */
  confirmed: { sent: number, true: number, false: number, rejected: Record<string, number>, delivered: number, trueNotDelivered: number, unsettled: number }
  /** Lines the nodes logged for a message they dropped after a plain send said true. */
  dropsLogged: number
  /** Plain sends said true, neither delivered nor logged as dropped: lost silently. */
  lostSilently: number
}

export interface Traffic {
  /** Stops sending, waits for what is in flight (bounded), and counts. */
  stop: () => Promise<TrafficCounts>
  /**
   * Milliseconds from `since` (performance.now()) until a confirmed send succeeded in each direction, or
   * null while one has not.
   */
  backAfter: (since: number) => number | null
  /**
   * Waits until traffic is back both ways after `since` (bounded), then lets it run `moreMs`; resolves
   * with how long it took to come back.
   */
  backWithin: (since: number, moreMs: number) => Promise<number>
}

/** The counts in one line, for a test's diagnostic. */
export function described (counts: TrafficCounts): string {
  return `plain ${JSON.stringify(counts.plain)}; confirmed ${JSON.stringify(counts.confirmed)}; drops logged ${counts.dropsLogged}; lost silently ${counts.lostSilently}`
}

/**
 * What an outage (Redis restarted, a failover) may cost and nothing more: calls refused or failed with a
 * typed error while it lasts, never a message lost silently, a confirmed send left unsettled or one said
 * delivered that was not, and never a live connection called gone.
 */
export function assertNothingLost (counts: TrafficCounts): void {
  assert.equal(counts.lostSilently, 0, 'every plain send said true was delivered or logged dropped')
  assert.equal(counts.confirmed.trueNotDelivered, 0)
  assert.equal(counts.confirmed.unsettled, 0, 'every confirmed send settled')
  assert.equal(counts.confirmed.false, 0, 'a live connection is never called gone')
  assert.deepEqual(Object.keys(counts.confirmed.rejected).filter((code) => !['FST_SIPWS_CLUSTER_UNAVAILABLE', 'FST_SIPWS_CLUSTER_TIMEOUT'].includes(code)), [], 'failures are typed')
  assert.equal(counts.plain.sent, counts.plain.true + counts.plain.false)
  assert.ok(counts.plain.delivered > 0 && counts.confirmed.true > 0, 'traffic flowed')
}

const DROPPED = /operation (for|from) another node dropped/

/**
 * Cross-node traffic between two nodes, both ways, every `everyMs`: a plain wsSend and a confirmed
 * wsCluster.send to a client connected to the other node, each numbered, so what was sent, said, delivered
 * and logged can be counted against each other.
 */
export async function startTraffic (a: TrafficNode, b: TrafficNode, everyMs: number, settleMs: number): Promise<Traffic> {
  const [wa, wb] = await Promise.all([connect(a.url), connect(b.url)])
  const idOf = (node: TrafficNode): number => node.app.wsDump('used_asc').connections[0].id
  const [ida, idb] = [idOf(a), idOf(b)]
  const arrived = new Set<string>()
  for (const ws of [wa, wb]) ws.on('message', (data: Buffer) => { arrived.add(data.toString()) })
  const plain = { sent: 0, true: 0, false: 0 }
  const saidTrue = new Set<string>()
  const confirmed = { sent: 0, true: 0, false: 0, rejected: {} as Record<string, number> }
  const confirmedTrue = new Set<string>()
  const pending = new Set<Promise<void>>()
  const firstOk: Array<{ at: number, dir: string }> = []
  const dropsBefore = [a, b].reduce((n, node) => n + node.entries.filter((e) => DROPPED.test(e.msg ?? '')).length, 0)
  let seq = 0
  const round = (from: TrafficNode, to: number, dir: string): void => {
    const n = ++seq
    plain.sent++
    const text = `${dir}:p:${n}`
    if (from.app.wsSend(to, text)) { plain.true++; saidTrue.add(text) } else plain.false++
    confirmed.sent++
    const ctext = `${dir}:c:${n}`
    const call = from.app.wsCluster.send(to, ctext).then((ok) => {
      if (ok) { confirmed.true++; confirmedTrue.add(ctext); firstOk.push({ at: performance.now(), dir }) } else confirmed.false++
    }, (err: Error & { code?: string }) => {
      const code = err.code ?? err.message
      confirmed.rejected[code] = (confirmed.rejected[code] ?? 0) + 1
    }).finally(() => { pending.delete(call) })
    pending.add(call)
  }
  const timer = setInterval(() => { round(a, idb, 'ab'); round(b, ida, 'ba') }, everyMs)
  const accounted = (): boolean => {
    const drops = [a, b].reduce((n, node) => n + node.entries.filter((e) => DROPPED.test(e.msg ?? '')).length, 0) - dropsBefore
    return [...saidTrue].filter((t) => arrived.has(t)).length + drops >= saidTrue.size && [...confirmedTrue].every((t) => arrived.has(t))
  }
  const backAfter = (since: number): number | null => {
    const at = ['ab', 'ba'].map((dir) => firstOk.find((e) => e.dir === dir && e.at >= since)?.at)
    return at.some((x) => x === undefined) ? null : Math.max(...at as number[]) - since
  }
  return {
    backAfter,
    backWithin: async (since, moreMs) => {
      await until(() => backAfter(since) !== null, 10_000, () => 'traffic back both ways', 20)
      const resumed = performance.now()
      await until(() => performance.now() - resumed >= moreMs, moreMs + 5000, () => 'more traffic', 50)
      return backAfter(since) ?? -1
    },
    stop: async () => {
      clearInterval(timer)
      // Whatever is still on its way arrives or is logged dropped within settleMs, or counts as lost.
      await until(() => pending.size === 0 && accounted(), settleMs, () => 'the traffic in flight to settle', 20).catch(() => {})
      const drops = [a, b].reduce((n, node) => n + node.entries.filter((e) => DROPPED.test(e.msg ?? '')).length, 0) - dropsBefore
      const delivered = [...saidTrue].filter((t) => arrived.has(t)).length
      const counts: TrafficCounts = {
        plain: { ...plain, delivered },
        confirmed: {
          ...confirmed,
          delivered: [...arrived].filter((t) => t.includes(':c:')).length,
          trueNotDelivered: [...confirmedTrue].filter((t) => !arrived.has(t)).length,
          unsettled: pending.size
        },
        dropsLogged: drops,
        lostSilently: Math.max(0, saidTrue.size - delivered - drops)
      }
      for (const ws of [wa, wb] as WebSocket[]) { ws.removeAllListeners('message'); ws.terminate() }
      return counts
    }
  }
}
