import assert from 'node:assert/strict'
import { hostname } from 'node:os'
import { after, before, describe, test } from 'node:test'
import { Heartbeats } from '../../../lib/cluster/heartbeat'
import type { Heartbeat } from '../../../lib/cluster/membership'
import { nodeKey } from '../../../lib/cluster/presence'
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
  let connections = 17
  const downs: ClusterNodeInfo[] = []
  before(reportedSetUp(async () => {
    redis = await startRedis()
    parts = await joinedParts(redis.url, { keyPrefix: 'hb', silenceMs: 750 })
    watcher = await listen(redis.url, parts.channels.control)
    heartbeats = new Heartbeats(nodeParts(parts, NODE_TIMEOUT), () => connections, (node) => { downs.push(node) })
  }))
  after(async () => {
    await parts?.close()
    await watcher?.close()
    await redis?.stop()
  })

  const known = (): string[] => [...parts.membership.values()].map((n) => n.instance).sort()
  const forget = (): void => { for (const n of [...parts.membership.values()]) parts.membership.remove(n.instance); downs.length = 0 }
  const beatsHeard = (): Heartbeat[] => watcher.messages.map((m) => JSON.parse(m.message.toString()) as Heartbeat).filter((b) => b.t === 'hb')
  /** Plays another node's presence in Redis (present: its node key is there). */
  const present = async (instance: string, there: boolean): Promise<void> => {
    if (there) await watcher.commands.set(nodeKey('hb', instance), '1', 'PX', 60_000)
    else await watcher.commands.del(nodeKey('hb', instance))
  }
  /** A time at which this node has been up long enough to judge silence. */
  const later = (): number => Math.max(Date.now(), parts.link.upSince + NODE_TIMEOUT)
  const logged = (msg: string, instance: string): unknown[] => parts.logged.entries.filter((e) => e.msg === msg && e.instance === instance)

  test('a beat tells the others who this node is, which leases it serves and how many connections it holds', async () => {
    const id = parts.leases.nextId()
    heartbeats.beat()
    const heard = await watcher.next((m) => m.message.toString().includes('"t":"hb"'), 5000, 'the heartbeat')
    assert.equal(heard.channel, 'hb:ctl')
    assert.deepEqual(JSON.parse(heard.message.toString()), { t: 'hb', i: parts.instance, s: parts.leases.slot, p: [parts.leases.currentPrefix], h: hostname(), pid: process.pid, c: 17 })
    parts.leases.released(id)
  })

  test('a node new to this one is logged once and hears from it at once; its own and malformed beats are dropped, logged', async () => {
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
    const after = parts.logged.entries.slice(before)
    assert.deepEqual(after.map((e) => [e.level, e.msg]), malformed.map(() => [40, 'fastify-sip-ws: cluster: malformed heartbeat dropped']), 'one line each, none for its own')
    const beatsBefore = beatsHeard().length
    connections = 3
    heartbeats.heard(beatOf('peer-a', [5, 6], { s: 3 }))
    heartbeats.heard(beatOf('peer-a', [5, 6, 7], { s: 4 }))
    assert.deepEqual(known(), ['peer-a'])
    assert.deepEqual(parts.membership.get('peer-a')?.prefixes, [5, 6, 7])
    const ups = parts.logged.entries.slice(before).filter((e) => e.msg === 'fastify-sip-ws: cluster: node up')
    assert.deepEqual(ups.map((e) => [e.level, e.instance, e.slot]), [[30, 'peer-a', 3]])
    // One beat in answer to the new node, none to its second beat.
    await until(() => beatsHeard().length > beatsBefore, 5000, () => 'the answering beat', 0)
    heartbeats.beat()
    await until(() => beatsHeard().length === beatsBefore + 2, 5000, () => 'the sentinel beat', 0)
    assert.deepEqual(beatsHeard().slice(beatsBefore).map((b) => [b.i, b.c]), [[parts.instance, 3], [parts.instance, 3]])
  })

  test('a node that says goodbye is gone once Redis no longer holds its presence: announced once, its requests fail', async () => {
    forget()
    heartbeats.heard(beatOf('peer-b', [10, 11], { s: 9 }))
    heartbeats.heard(beatOf('peer-c', [20]))
    const [toB, alsoToB, toC] = [parts.requests.open(10), parts.requests.open(11), parts.requests.open(20)]
    const failed = [toB, alsoToB].map(async (r) => {
      await assert.rejects(within(r.answer, 5000, () => 'the failure'), { code: 'FST_SIPWS_CLUSTER_NODE_GONE', message: 'cluster: node peer-b went away before it answered' })
    })
    heartbeats.left(parts.instance)
    heartbeats.left('nobody')
    await present('peer-c', true)
    heartbeats.left('peer-c')
    await present('peer-b', false)
    heartbeats.left('peer-b')
    await until(() => downs.length > 0, 5000, () => 'peer-b announced', 0)
    assert.deepEqual(downs.map((n) => [n.instance, n.slot, n.prefixes]), [['peer-b', 9, [10, 11]]])
    assert.deepEqual(known(), ['peer-c'], 'a goodbye Redis contradicts is not believed')
    await Promise.all(failed)
    parts.requests.answered({ request: toC.id, ok: true, body: Buffer.alloc(0) })
    assert.deepEqual(await toC.answer, { ok: true, body: null }, 'a request to another node goes on')
    const gone = await parts.logged.next('node gone', 1000)
    assert.deepEqual([gone.level, gone.instance, gone.slot, gone.why], [40, 'peer-b', 9, 'left'])
    assert.equal(parts.membership.gone(10), true)
    heartbeats.left('peer-b')
    await parts.link.commands.ping()
    assert.equal(downs.length, 1, 'announced once')
  })

  test('silence counts only once up for nodeTimeout; a silent node is gone only when Redis says so, once', async () => {
    forget()
    const upSince = parts.link.upSince
    assert.ok(upSince > 0)
    // Heard long before this node could hear anything: silent by the clock, but only just up.
    parts.membership.heard(beatOf('peer-d', [30], { s: 2 }), upSince - 10_000)
    await present('peer-d', false)
    heartbeats.sweep(upSince + NODE_TIMEOUT - 1)
    await parts.link.commands.ping()
    assert.deepEqual([known(), downs.length], [['peer-d'], 0])
    heartbeats.sweep(upSince + NODE_TIMEOUT)
    await until(() => downs.length > 0, 5000, () => 'peer-d announced', 0)
    assert.deepEqual(downs.map((n) => n.instance), ['peer-d'])
    assert.deepEqual(known(), [])
    assert.deepEqual(logged('fastify-sip-ws: cluster: node gone', 'peer-d').map((e) => (e as { why: string }).why), ['silent'])
    heartbeats.sweep(upSince + 10 * NODE_TIMEOUT)
    await parts.link.commands.ping()
    assert.equal(downs.length, 1)
  })

  test('a silent node whose presence Redis holds is not gone: warned of once per silence; gone once its key is', async () => {
    forget()
    const warning = 'fastify-sip-ws: cluster: node silent but its lease is alive; not counted gone'
    await present('peer-e', true)
    parts.membership.heard(beatOf('peer-e', [40]), Date.now() - 60_000)
    for (let i = 0; i < 3; i++) {
      heartbeats.sweep(later())
      await until(() => logged(warning, 'peer-e').length > 0, 5000, () => 'the warning', 0)
    }
    // Every check answered and done with.
    await parts.link.commands.ping()
    await new Promise((resolve) => setImmediate(resolve))
    assert.deepEqual([known(), downs.length, logged(warning, 'peer-e').length], [['peer-e'], 0, 1])
    // Heard again, then silent again: a new silence, warned of again.
    heartbeats.heard(beatOf('peer-e', [40]))
    parts.membership.heard(beatOf('peer-e', [40]), Date.now() - 60_000)
    heartbeats.sweep(later())
    await until(() => logged(warning, 'peer-e').length === 2, 5000, () => 'the second warning', 0)
    await new Promise((resolve) => setImmediate(resolve))
    await present('peer-e', false)
    heartbeats.sweep(later())
    await until(() => downs.length === 1, 5000, () => 'peer-e announced', 0)
    assert.deepEqual([known(), downs[0].instance], [[], 'peer-e'])
  })

  test('a node heard from while Redis was asked is not announced', async () => {
    forget()
    await present('peer-f', false)
    parts.membership.heard(beatOf('peer-f', [50]), Date.now() - 60_000)
    heartbeats.sweep(later())
    // Heard before Redis' answer comes back (the check is one round trip away).
    heartbeats.heard(beatOf('peer-f', [50]))
    await parts.link.commands.ping()
    await parts.link.commands.ping()
    assert.deepEqual([known(), downs.length], [['peer-f'], 0])
  })

  test('while Redis is away nobody is silent: an outage is not every other node dying', async () => {
    forget()
    parts.membership.heard(beatOf('peer-g', [60]), Date.now() - 60_000)
    await redis.kill()
    await until(() => parts.link.upSince === 0, 5000, () => 'the link to see Redis go')
    heartbeats.sweep(Date.now() + 60_000)
    assert.deepEqual([known(), downs.length], [['peer-g'], 0])
    // A beat while Redis is away is dropped, not queued or thrown.
    heartbeats.beat()
    await redis.restart()
    await until(() => parts.link.ready, 5000, () => 'the link back')
    heartbeats.sweep(Date.now())
    await parts.link.commands.ping()
    assert.deepEqual([known(), downs.length], [['peer-g'], 0], 'just back: still not long enough up')
  })
})
