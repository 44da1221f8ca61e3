import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { NODE_TIMEOUT } from '../../example/cluster/link'
import { SipTraffic } from '../helpers/sip-traffic'
import { clusterScene, traffic as run, wsUrl } from './example-cluster-scene'
import { clusterFormed, runExample } from './example-process'
import { startCrowd } from './jssip-crowd'

const PER_NODE = 4
const INTERVAL_MS = 200
const STEADY_MS = 2000
/** Longer than 2 × nodeTimeout: the others count the stalled node gone meanwhile, as Redis says. */
const STALL_MS = 2 * NODE_TIMEOUT + 1500
/** The goal: the stalled node's users reachable again this soon after SIGCONT. */
const BACK_WITHIN_MS = 2000

const users = (name: string): string[] => Array.from({ length: PER_NODE }, (_, i) => `${name}${String(i).padStart(2, '0')}`)

describe('one example node of three SIGSTOPped past 2 × nodeTimeout, then SIGCONT, under traffic (JsSIP)', () => {
  const scene = clusterScene()

  test(`node C stalled ${STALL_MS} ms: 0 failures between A and B, during or after; C's users reachable within ${BACK_WITHIN_MS} ms of SIGCONT`, { timeout: 120_000 }, async (t) => {
    const { redis, nodes, crowds } = scene
    const [a, b, c] = await Promise.all([0, 1, 2].map(async () => await runExample({ REDIS_URL: redis.url })))
    nodes.push(a, b, c)
    await clusterFormed(nodes, 3)
    // A's users and B's users send to each other; A's also to C's, which the stall takes away for a while.
    const between = new SipTraffic()
    const toStalled = new SipTraffic()
    const onA = await startCrowd([wsUrl(a)], PER_NODE, INTERVAL_MS, { name: 'a', targets: () => users('b'), traffic: between })
    const onB = await startCrowd([wsUrl(b)], PER_NODE, INTERVAL_MS, { name: 'b', targets: () => users('a'), traffic: between })
    const onC = await startCrowd([wsUrl(c)], PER_NODE, INTERVAL_MS, { name: 'c', targets: () => users('a') })
    const probes = await startCrowd([wsUrl(a)], 2, INTERVAL_MS / 2, { name: 'p', targets: () => users('c'), traffic: toStalled })
    crowds.push(onA, onB, onC, probes)
    for (const crowd of [onA, onB, probes]) crowd.start()
    await run(STEADY_MS)

    const stoppedAt = performance.now()
    c.child.kill('SIGSTOP')
    await run(STALL_MS)
    c.child.kill('SIGCONT')
    const resumedAt = performance.now()
    await run(STEADY_MS + BACK_WITHIN_MS)
    await Promise.all([onA, onB, probes].map(async (crowd) => { await crowd.stop(5000) }))

    const firstBack = toStalled.records.find((r) => r.sentAt >= resumedAt && r.status === 200)
    const failedAfter = toStalled.records.filter((r) => r.sentAt >= resumedAt && r.status !== 200).map((r) => r.sentAt)
    const reachable = Math.max(firstBack === undefined ? Infinity : firstBack.endedAt, ...failedAfter.map((at) => at + 1)) - resumedAt
    t.diagnostic(`between A and B: before ${SipTraffic.describe(between.counts(0, stoppedAt))}; during ${SipTraffic.describe(between.counts(stoppedAt, resumedAt))}; after ${SipTraffic.describe(between.counts(resumedAt))}`)
    t.diagnostic(`to C's users: during ${SipTraffic.describe(toStalled.counts(stoppedAt, resumedAt))}; after ${SipTraffic.describe(toStalled.counts(resumedAt))}; all 200 again ${reachable.toFixed(0)} ms after SIGCONT`)
    t.diagnostic(`lines on C after SIGCONT: ${JSON.stringify(c.lines.filter((l) => /counted this node gone|written again/.test(String(l.msg))).map((l) => ({ msg: l.msg, reason: l.reason, bindings: l.bindings })))}`)
    between.assertEveryRequestAnswered()
    toStalled.assertEveryRequestAnswered()
    const all = between.counts()
    assert.ok(all.sent > PER_NODE * 2 * 20, `traffic flowed between A and B: ${all.sent}`)
    assert.equal(all.ok, all.sent, `0 failures between A and B: ${SipTraffic.describe(all)}`)
    assert.ok(reachable <= BACK_WITHIN_MS, `C's users reachable ${reachable.toFixed(0)} ms after SIGCONT`)
  })
})
