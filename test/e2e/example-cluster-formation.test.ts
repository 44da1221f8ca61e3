import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { SipTraffic } from '../helpers/sip-traffic'
import { clusterScene, traffic as run, wsUrl } from './example-cluster-scene'
import { runExample } from './example-process'
import { startCrowd } from './jssip-crowd'

const ROUNDS = 3
/** How long each round probes: the window issue #19 measured was 612–724 ms, growing with nodeTimeout. */
const PROBE_MS = 2000
const INTERVAL_MS = 20


describe('two example nodes started at once, probed both ways from their first connection (JsSIP)', () => {
  const scene = clusterScene()

  test(`${ROUNDS} rounds: MESSAGE every ${INTERVAL_MS} ms each way for ${PROBE_MS} ms from the moment both listen: every one 200`, { timeout: 120_000 }, async (t) => {
    const { redis, nodes, crowds } = scene
    const traffic = new SipTraffic()
    for (let round = 0; round < ROUNDS; round++) {
      const [a, b] = await Promise.all([runExample({ REDIS_URL: redis.url }), runExample({ REDIS_URL: redis.url })])
      const listening = performance.now()
      nodes.push(a, b)
      // Nobody waits for the nodes to hear of each other: the agents register and send at once.
      const [onA, onB] = [`a${round}-`, `b${round}-`]
      const pair = await Promise.all([
        startCrowd([wsUrl(a)], 1, INTERVAL_MS, { name: onA, targets: () => [`${onB}00`], traffic }),
        startCrowd([wsUrl(b)], 1, INTERVAL_MS, { name: onB, targets: () => [`${onA}00`], traffic })
      ])
      crowds.push(...pair)
      const from = performance.now()
      for (const crowd of pair) crowd.start()
      await run(PROBE_MS)
      await Promise.all(pair.map(async (crowd) => { await crowd.stop(5000) }))
      const counts = traffic.counts(from)
      const first = traffic.records.find((r) => r.sentAt >= from)
      t.diagnostic(`round ${round + 1}: first probe ${((first?.sentAt ?? from) - listening).toFixed(0)} ms after both listened; ${SipTraffic.describe(counts)}`)
      for (const crowd of pair) crowd.close()
      await Promise.all([a.kill(), b.kill()])
    }
    traffic.assertEveryRequestAnswered()
    const all = traffic.counts()
    assert.ok(all.sent > ROUNDS * 20, `probes flowed: ${all.sent}`)
    assert.equal(all.ok, all.sent, `0 failed probes: ${SipTraffic.describe(all)}`)
  })
})
