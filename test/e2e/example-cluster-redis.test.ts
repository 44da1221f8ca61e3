import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { SipTraffic } from '../helpers/sip-traffic'
import { clusterScene, traffic as run, wsUrl } from './example-cluster-scene'
import { clusterFormed, runExample } from './example-process'
import { startCrowd } from './jssip-crowd'

const AGENTS = 20
const INTERVAL_MS = 200
const STEADY_MS = 3000
/** How long Redis stays away. */
const OUTAGE_MS = 2000
/** The goal: every request sent this long after Redis answers again gets 200. */
const BACK_WITHIN_MS = 2000
/** Parked requests (users found nowhere while the nodes write their bindings again) wait up to 2 s. */
const SETTLE_MS = 5000


describe('Redis killed and restarted empty under traffic (20 JsSIP agents on two nodes)', () => {
  const scene = clusterScene()

  test(`an outage of ${OUTAGE_MS} ms: every request answered, 480 only while Redis is away, all 200 again within ${BACK_WITHIN_MS} ms`, { timeout: 120_000 }, async (t) => {
    const { redis, nodes } = scene
    const env = { REDIS_URL: redis.url }
    nodes.push(await runExample(env), await runExample(env))
    await clusterFormed(nodes, 2)
    const crowd = await startCrowd(nodes.map(wsUrl), AGENTS, INTERVAL_MS)
    scene.crowds.push(crowd)
    const { traffic } = crowd
    crowd.start()
    await run(STEADY_MS)
    const downAt = performance.now()
    await redis.kill()
    await run(OUTAGE_MS)
    await redis.restart()
    const backAt = performance.now()
    await run(STEADY_MS + BACK_WITHIN_MS)
    await crowd.stop(SETTLE_MS)

    const before = traffic.counts(0, downAt)
    const during = traffic.counts(downAt, backAt)
    const settling = traffic.counts(backAt, backAt + BACK_WITHIN_MS)
    const afterwards = traffic.counts(backAt + BACK_WITHIN_MS)
    const lastFailure = traffic.records.filter((r) => r.status !== 200).reduce((latest, r) => Math.max(latest, r.sentAt), -Infinity)
    t.diagnostic(`before: ${SipTraffic.describe(before)}`)
    t.diagnostic(`Redis away (${(backAt - downAt).toFixed(0)} ms): ${SipTraffic.describe(during)}`)
    t.diagnostic(`first ${BACK_WITHIN_MS} ms after it answers again: ${SipTraffic.describe(settling)}`)
    t.diagnostic(`afterwards: ${SipTraffic.describe(afterwards)}`)
    t.diagnostic(lastFailure === -Infinity ? 'no request failed' : `last request that did not get 200 was sent ${(lastFailure - backAt).toFixed(0)} ms after Redis answered again`)
    traffic.assertEveryRequestAnswered()
    const whole = traffic.counts()
    assert.equal(whole.notFound, 0, 'no 404 to a registered user: a user found nowhere while the nodes write their bindings again waits')
    assert.equal(whole.other, 0, `only 200 and 480: ${SipTraffic.describe(whole)}`)
    const settledBefore = traffic.records.filter((r) => r.endedAt < downAt)
    assert.ok(settledBefore.length > 0 && settledBefore.every((r) => r.status === 200), 'all 200 before the outage')
    assert.ok(during.unavailable > 0, 'requests between the nodes got 480 while Redis was away')
    assert.ok(during.ok > 0, 'requests within a node went on')
    assert.ok(afterwards.sent > AGENTS * 5 && afterwards.ok === afterwards.sent, `all 200 from ${BACK_WITHIN_MS} ms after Redis is back: ${SipTraffic.describe(afterwards)}`)
  })
})
