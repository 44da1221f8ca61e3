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
  return {
    backAfter: (since) => {
      const at = ['ab', 'ba'].map((dir) => firstOk.find((e) => e.dir === dir && e.at >= since)?.at)
      return at.some((x) => x === undefined) ? null : Math.max(...at as number[]) - since
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
