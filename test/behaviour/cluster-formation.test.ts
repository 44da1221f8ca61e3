import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type WebSocket from 'ws'
import { until } from '../helpers/pool'
import { startRedis, type RedisServer } from '../helpers/redis'
import { connect, startApp, type Started } from '../helpers/server'
import { reportedSetUp } from '../helpers/set-up'

// A heartbeat every 5 s: a node known sooner was known from the start-up read of the leases or the
// announce, not from a heartbeat.
const NODE_TIMEOUT = 20_000
const BEAT = NODE_TIMEOUT / 4
const RUNS = 5
const ROUNDS = 50

describe('nodes starting together', () => {
  let redis: RedisServer
  before(reportedSetUp(async () => { redis = await startRedis() }))
  after(async () => { await redis?.stop() })

  test(`two nodes started at once know each other at once and reach each other from their first connection (${RUNS} runs)`, async (t) => {
    let failures = 0
    let probes = 0
    for (let run = 0; run < RUNS; run++) {
      const begun = performance.now()
      const nodes = await Promise.all([0, 1].map(async () => await startApp({ cluster: { redis: redis.url, nodeTimeout: NODE_TIMEOUT } })))
      const [a, b] = nodes
      try {
        const listening = performance.now()
        // Watched alongside the probes, which do not wait for it.
        const knownAt = until(() => nodes.every((n) => n.app.wsCluster.nodes().length === 2), BEAT, () => 'each node to know the other', 0).then(() => performance.now())
        const clients = await Promise.all(nodes.map(async (n) => await connect(n.url)))
        const received = clients.map(() => new Set<string>())
        clients.forEach((ws, i) => { ws.on('message', (data: Buffer) => { received[i].add(data.toString()) }) })
        const [ida, idb] = nodes.map((n) => n.app.wsDump().connections[0].id)
        const seenAtFirstProbe = [a.app.wsCluster.nodes().length, b.app.wsCluster.nodes().length]
        // Probes both ways from the first connection on: plain and confirmed, round after round.
        const outcomes: string[] = []
        for (let round = 0; round < ROUNDS; round++) {
          const plain = [a.app.wsSend(idb, `p${round}`), b.app.wsSend(ida, `p${round}`)]
          const confirmed = await Promise.all([a.app.wsCluster.send(idb, `c${round}`), b.app.wsCluster.send(ida, `c${round}`)].map(async (p) => await p.catch((err: Error & { code?: string }) => err.code ?? err.message)))
          for (const result of [...plain, ...confirmed]) {
            probes++
            if (result !== true) { failures++; outcomes.push(`round ${round}: ${String(result)}`) }
          }
        }
        // Every plain probe said true arrives too.
        await until(() => received.every((r) => r.size === 2 * ROUNDS), 5000, () => `the probes to arrive (${received.map((r) => r.size).join(', ')} of ${2 * ROUNDS})`, 10)
        const knownAfter = await knownAt - listening
        const full = nodes.every((n) => n.app.wsCluster.nodes().every((info) => info.host !== '' && info.pid > 0))
        t.diagnostic(`run ${run + 1}: both listening ${(listening - begun).toFixed(0)} ms after the start; nodes seen at the first probe ${seenAtFirstProbe.join(' and ')}; each knew the other ${knownAfter.toFixed(0)} ms after listening (heartbeat every ${BEAT} ms); ${outcomes.length} failed probes ${outcomes.slice(0, 3).join('; ')}`)
        assert.deepEqual(outcomes, [], 'no probe failed')
        assert.ok(knownAfter < BEAT, 'known before any heartbeat could have told')
        assert.ok(full, 'host and pid known too: the older node answered the announce at once')
        for (const ws of clients as WebSocket[]) ws.terminate()
      } finally {
        await Promise.all([a.app.close(), b.app.close()])
      }
    }
    t.diagnostic(`${probes} probes, ${failures} failed`)
    assert.equal(failures, 0)
    assert.equal(probes, RUNS * ROUNDS * 4)
  })

  test('a node started next to running ones lists them from Redis before any heartbeat', async () => {
    const running: Started[] = []
    for (let i = 0; i < 3; i++) running.push(await startApp({ cluster: { redis: redis.url, nodeTimeout: NODE_TIMEOUT } }))
    try {
      const late = await startApp({ cluster: { redis: redis.url, nodeTimeout: NODE_TIMEOUT } })
      try {
        // Right after register: no heartbeat could have come (the next are BEAT ms away).
        const seen = late.app.wsCluster.nodes().map((n) => n.instance).sort()
        assert.deepEqual(seen, [late.app.wsCluster.instance, ...running.map((s) => s.app.wsCluster.instance)].sort())
        await until(() => running.every((s) => s.app.wsCluster.nodes().length === 4), 2000, () => 'the running nodes to hear the announce')
      } finally {
        await late.app.close()
      }
    } finally {
      for (const s of running) await s.app.close()
    }
  })
})
