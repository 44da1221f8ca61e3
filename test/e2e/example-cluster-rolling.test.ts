import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { SipTraffic } from '../helpers/sip-traffic'
import { clusterScene, traffic, wsUrl } from './example-cluster-scene'
import { clusterFormed, drainAndRestart, runExample, type LogLine } from './example-process'
import { startCrowd } from './jssip-crowd'

const AGENTS = 20
const INTERVAL_MS = 200
const DRAIN_MS = 4000
/** Traffic before the first restart, between the two, and after the last. */
const STEADY_MS = 3000
/** What a request may still take when traffic stops: a parked one waits for its user up to 18 s. */
const SETTLE_MS = 20_000


/** Why each node answered 480 itself, counted from its log (`sip: 480 Temporarily Unavailable`). */
function unavailableWhy (lines: LogLine[]): Record<string, number> {
  const why: Record<string, number> = {}
  for (const l of lines) if (l.msg === 'sip: 480 Temporarily Unavailable') why[String(l.why)] = (why[String(l.why)] ?? 0) + 1
  return why
}

describe('a rolling restart of both nodes under traffic (20 JsSIP agents given both nodes\' URLs)', () => {
  const scene = clusterScene()

  test(`SIGTERM node A (drain ${DRAIN_MS} ms), start it again, then B: ≥ 99.5% 200, no 404, every request answered`, { timeout: 240_000 }, async (t) => {
    const { nodes } = scene
    const env = { REDIS_URL: scene.redis.url, DRAIN_MS: String(DRAIN_MS) }
    let a = await runExample(env)
    let b = await runExample(env)
    nodes.push(a, b)
    await clusterFormed([a, b], 2)
    const crowd = await startCrowd([wsUrl(a), wsUrl(b)], AGENTS, INTERVAL_MS)
    scene.crowds.push(crowd)
    const spread = crowd.agents.map((agent) => agent.sockets.findIndex((s) => s.history.includes('open')))
    t.diagnostic(`agents on A: ${spread.filter((i) => i === 0).length}, on B: ${spread.filter((i) => i === 1).length}`)
    crowd.start()
    await traffic(STEADY_MS)

    const phases: Array<() => string> = []
    for (const which of ['A', 'B'] as const) {
      const node = which === 'A' ? a : b
      const from = performance.now()
      const { next, health, exitedAfter } = await drainAndRestart(node, env, DRAIN_MS)
      nodes.push(next)
      if (which === 'A') a = next
      else b = next
      assert.equal(health, 503, `node ${which}'s health route while it drained`)
      await clusterFormed([a, b], 2)
      await traffic(STEADY_MS)
      const to = performance.now()
      phases.push(() => `${which}: drained and exited in ${exitedAfter.toFixed(0)} ms (480s it gave: ${JSON.stringify(unavailableWhy(node.lines))}); requests sent from its SIGTERM until it was back and steady: ${SipTraffic.describe(crowd.traffic.counts(from, to))}`)
    }
    await crowd.stop(SETTLE_MS)
    const counts = crowd.traffic.counts()
    for (const phase of phases) t.diagnostic(phase())
    t.diagnostic(`whole run: ${crowd.traffic.summary()}; 480s by why, new nodes: ${JSON.stringify([a, b].map((n) => unavailableWhy(n.lines)))}`)
    const moves = crowd.agents.flatMap((agent) => agent.moves).sort((x, y) => x - y)
    t.diagnostic(`moves (closed → registered on the other node): ${moves.length}, median ${(moves[Math.floor(moves.length / 2)] ?? 0).toFixed(0)} ms, max ${(moves.at(-1) ?? 0).toFixed(0)} ms`)
    const t0 = crowd.traffic.records[0]?.sentAt ?? 0
    const unanswered = crowd.traffic.unanswered()
    if (unanswered.length > 0) t.diagnostic(`unanswered: ${unanswered.map((r) => `${r.what} at ${(r.sentAt - t0).toFixed(0)} ms (${r.cause ?? ''})`).join('; ')}`)
    assert.ok(counts.sent > AGENTS * 20, `traffic flowed: ${counts.sent} requests`)
    assert.equal(counts.notFound, 0, 'no 404 to a registered user')
    crowd.traffic.assertEveryRequestAnswered()
    assert.ok(counts.ok / counts.sent >= 0.995, `≥ 99.5% 200: ${SipTraffic.describe(counts)}`)
  })
})
