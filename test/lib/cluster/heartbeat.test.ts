import assert from 'node:assert/strict'
import { hostname } from 'node:os'
import { after, before, describe, test } from 'node:test'
import { Heartbeats } from '../../../lib/cluster/heartbeat'
import type { Heartbeat } from '../../../lib/cluster/membership'
import type { ClusterNodeInfo } from '../../../lib/cluster/types'
import { beatOf, joinedParts, nodeParts, listen, type Listener, type Parts } from '../../helpers/cluster-parts'
import { until, within } from '../../helpers/pool'
import { startRedis, type RedisServer } from '../../helpers/redis'
import { reportedSetUp } from '../../helpers/set-up'

const NODE_TIMEOUT = 1000

describe('heartbeats', () => {
  let redis: RedisServer
  let watcher: Listener
  let parts: Parts
  let heartbeats: Heartbeats
  const downs: ClusterNodeInfo[] = []
  before(reportedSetUp(async () => {
    redis = await startRedis()
    parts = await joinedParts(redis.url, { keyPrefix: 'hb', silenceMs: 750 })
    watcher = await listen(redis.url, parts.channels.control)
    heartbeats = new Heartbeats(nodeParts(parts), NODE_TIMEOUT, (node) => { downs.push(node) })
  }))
  after(async () => {
    await parts?.close()
    await watcher?.close()
    await redis?.stop()
  })

  const known = (): string[] => [...parts.membership.values()].map((n) => n.instance).sort()
  const forget = (): void => { for (const n of [...parts.membership.values()]) parts.membership.remove(n.instance); downs.length = 0 }

  test('a beat tells the others who this node is, which leases it serves and how many connections it holds', async () => {
    const id = parts.leases.nextId()
    heartbeats.beat(17)
    const heard = await watcher.next((m) => m.message.toString().includes('"t":"hb"'), 5000, 'the heartbeat')
    assert.equal(heard.channel, 'hb:ctl')
    assert.deepEqual(JSON.parse(heard.message.toString()), { t: 'hb', i: parts.instance, s: parts.leases.slot, p: [parts.leases.currentPrefix], h: hostname(), pid: process.pid, c: 17 })
    parts.leases.released(id)
  })

  test('another node\'s beat makes it known, logged once; this node\'s own beat and malformed ones are dropped', () => {
    forget()
    const before = parts.logged.entries.length
    heartbeats.heard(beatOf(parts.instance, [1]))
    const malformed = [
      { ...beatOf('x', [1]), i: 42 },
      { ...beatOf('x', [1]), i: undefined },
      { ...beatOf('x', [1]), p: 'all' },
      { ...beatOf('x', [1]), p: undefined },
      beatOf('x', [1, 1.5]),
      beatOf('x', [2 ** 53]),
      { ...beatOf('x', [1]), p: ['1'] },
      { ...beatOf('x', [1]), p: [null] }
    ] as unknown as Heartbeat[]
    for (const beat of malformed) heartbeats.heard(beat)
    assert.deepEqual(known(), [])
    assert.equal(parts.logged.entries.length, before, 'nothing logged for them')
    heartbeats.heard(beatOf('peer-a', [5, 6], { s: 3 }))
    heartbeats.heard(beatOf('peer-a', [5, 6, 7], { s: 4 }))
    assert.deepEqual(known(), ['peer-a'])
    assert.equal(parts.membership.owner(7)?.instance, 'peer-a')
    const ups = parts.logged.entries.slice(before).filter((e) => e.msg === 'fastify-sip-ws: cluster: node up')
    assert.deepEqual(ups.map((e) => [e.level, e.instance, e.slot]), [[30, 'peer-a', 3]])
  })

  test('a node that leaves is gone at once: logged, announced with its leases, its requests fail naming it', async () => {
    forget()
    heartbeats.heard(beatOf('peer-b', [10, 11], { s: 9 }))
    heartbeats.heard(beatOf('peer-c', [20]))
    const [toB, alsoToB, toC] = [parts.requests.open(10), parts.requests.open(11), parts.requests.open(20)]
    heartbeats.left(parts.instance)
    heartbeats.left('nobody')
    assert.equal(downs.length, 0, 'only a known other node can leave')
    heartbeats.left('peer-b')
    assert.deepEqual(downs.map((n) => [n.instance, n.slot, n.prefixes]), [['peer-b', 9, [10, 11]]])
    assert.deepEqual(known(), ['peer-c'])
    for (const r of [toB, alsoToB]) {
      await assert.rejects(within(r.answer, 1000, () => 'the failure'), { code: 'FST_SIPWS_CLUSTER_NODE_GONE', message: 'cluster: node peer-b went away before it answered' })
    }
    parts.requests.answered({ request: toC.id, ok: true, body: Buffer.alloc(0) })
    assert.deepEqual(await toC.answer, { ok: true, body: null }, 'a request to another node goes on')
    const gone = await parts.logged.next('node gone', 1000)
    assert.deepEqual([gone.level, gone.instance, gone.slot, gone.why], [40, 'peer-b', 9, 'left'])
    heartbeats.left('peer-b')
    assert.equal(downs.length, 1, 'announced once')
  })

  test('silence counts only once this node has been up for nodeTimeout; a silent node is gone once', () => {
    forget()
    const upSince = parts.link.upSince
    assert.ok(upSince > 0)
    // Heard long before this node could hear anything: silent by the clock, but only just up.
    parts.membership.heard(beatOf('peer-d', [30], { s: 2 }), upSince - 10_000)
    heartbeats.sweep(upSince + NODE_TIMEOUT - 1)
    assert.deepEqual([known(), downs.length], [['peer-d'], 0])
    heartbeats.sweep(upSince + NODE_TIMEOUT)
    assert.deepEqual(downs.map((n) => n.instance), ['peer-d'])
    assert.deepEqual(known(), [])
    const gone = parts.logged.entries.filter((e) => e.msg === 'fastify-sip-ws: cluster: node gone' && e.instance === 'peer-d')
    assert.deepEqual(gone.map((e) => e.why), ['silent'])
    heartbeats.sweep(upSince + 10 * NODE_TIMEOUT)
    assert.equal(downs.length, 1)
  })

  test('while Redis is away nobody is silent: an outage is not every other node dying', async () => {
    forget()
    parts.membership.heard(beatOf('peer-e', [40]), Date.now() - 60_000)
    await redis.kill()
    await until(() => parts.link.upSince === 0, 5000, () => 'the link to see Redis go')
    heartbeats.sweep(Date.now() + 60_000)
    assert.deepEqual([known(), downs.length], [['peer-e'], 0])
    // A beat while Redis is away is dropped, not queued or thrown.
    heartbeats.beat(0)
    await redis.restart()
    await until(() => parts.link.ready, 5000, () => 'the link back')
    heartbeats.sweep(Date.now())
    assert.deepEqual([known(), downs.length], [['peer-e'], 0], 'just back: still not long enough up')
  })
})
