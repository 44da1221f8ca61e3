import assert from 'node:assert/strict'
import { after, before, beforeEach, describe, test } from 'node:test'
import { Channels } from '../../../lib/cluster/channels'
import { idPrefix, leaseOf, makeId, MAX_COUNTER, MAX_SLOTS } from '../../../lib/cluster/ids'
import { Leases } from '../../../lib/cluster/leases'
import { RedisLink } from '../../../lib/cluster/link'
import { redisPair } from '../../../lib/cluster/redis'
import { joinedParts, listen, recordedLog, subscribers, type Listener, type Parts } from '../../helpers/cluster-parts'
import { until } from '../../helpers/pool'
import { startRedis, type RedisServer } from '../../helpers/redis'
import { reportedSetUp } from '../../helpers/set-up'

describe('a node\'s leases and ids', () => {
  let redis: RedisServer
  let watcher: Listener
  const open: Parts[] = []
  before(reportedSetUp(async () => {
    redis = await startRedis()
    watcher = await listen(redis.url)
  }))
  after(async () => {
    for (const parts of open.splice(0)) await parts.close()
    await watcher?.close()
    await redis?.stop()
  })
  beforeEach(async () => {
    for (const parts of open.splice(0)) await parts.close()
    await watcher.commands.flushall()
  })

  async function node (): Promise<Parts> {
    const parts = await joinedParts(redis.url, { keyPrefix: 'ls' })
    open.push(parts)
    return parts
  }

  const slotKey = (prefix: number): string => `ls:slot:${leaseOf(prefix).slot}`

  test('before its first lease a node has none; take holds one and subscribes to its channel', async () => {
    const logged = recordedLog()
    const link = new RedisLink(redisPair(redis.url), 'n0', logged.log, () => {})
    const channels = new Channels('ls')
    const leases = new Leases(link, channels, 'ls', 'n0', 5000, logged.log)
    assert.deepEqual([leases.currentPrefix, leases.slot, leases.prefixes()], [-1, -1, []])
    await link.connect(5000, async () => { await leases.take() })
    try {
      const prefix = leases.currentPrefix
      assert.ok(prefix >= 0)
      assert.equal(leases.slot, leaseOf(prefix).slot)
      assert.deepEqual(leases.prefixes(), [prefix])
      assert.equal(leases.serves(prefix), true)
      assert.equal(leases.serves(prefix + 1), false)
      assert.equal(await watcher.commands.get(slotKey(prefix)), `n0 ${leaseOf(prefix).epoch}`)
      assert.equal(await subscribers(watcher.commands, channels.of(prefix)), 1)
    } finally {
      await link.close(async () => {}, 1000)
    }
  })

  test('ids count from 1 under the current lease; it stays served with no connection left', async () => {
    const { leases, channels } = await node()
    const prefix = leases.currentPrefix
    const ids = [leases.nextId(), leases.nextId(), leases.nextId()]
    assert.deepEqual(ids, [makeId(prefix, 1), makeId(prefix, 2), makeId(prefix, 3)])
    for (const id of ids) assert.equal(idPrefix(id), prefix)
    for (const id of ids) leases.released(id)
    assert.deepEqual(leases.prefixes(), [prefix])
    assert.equal(leases.nextId(), makeId(prefix, 4), 'never reused')
    assert.equal(await subscribers(watcher.commands, channels.of(prefix)), 1)
  })

  test('a lease another node took: a warning, a new lease for new ids, the old one served until its last connection closes', async () => {
    const { leases, channels, logged } = await node()
    const old = leases.currentPrefix
    const [a, b] = [leases.nextId(), leases.nextId()]
    // Another node got the slot while this one could not renew (Redis away, its lease ran out).
    await watcher.commands.set(slotKey(old), 'intruder 1', 'PX', 60_000)
    assert.deepEqual(await leases.renew(), { lease: 'lost', lapsed: true }, 'lost, and no presence written before either')
    const warned = await logged.next('slot taken by another node', 5000)
    assert.deepEqual([warned.level, warned.slot, warned.epoch], [40, leaseOf(old).slot, leaseOf(old).epoch])
    await until(() => leases.currentPrefix !== old, 5000, () => 'a new lease')
    const fresh = leases.currentPrefix
    assert.notEqual(leaseOf(fresh).slot, leaseOf(old).slot)
    assert.equal(idPrefix(leases.nextId()), fresh)
    assert.deepEqual(leases.prefixes().sort(), [old, fresh].sort())
    assert.equal(await subscribers(watcher.commands, channels.of(old)), 1, 'the old ids still reach this node')
    assert.equal(await watcher.commands.get(slotKey(old)), 'intruder 1', 'the other node\'s key is left alone')
    leases.released(a)
    assert.equal(leases.serves(old), true)
    leases.released(b)
    assert.equal(leases.serves(old), false)
    assert.deepEqual(leases.prefixes(), [fresh])
    await until(async () => await subscribers(watcher.commands, channels.of(old)) === 0, 5000, () => 'the old channel to be left')
    await until(async () => await watcher.commands.exists(`ls:live:${old}`) === 0, 5000, () => 'the old lease\'s presence to go')
  })

  test('renewing keeps the lease and the node\'s presence up, and says when either had run out', async () => {
    const { leases, logged, instance } = await node()
    const current = leases.currentPrefix
    const key = slotKey(current)
    assert.deepEqual(await leases.renew(), { lease: 'held', lapsed: true }, 'the first renewal writes the presence')
    assert.equal(await watcher.commands.get(`ls:node:${instance}`), String(current))
    assert.equal(await watcher.commands.get(`ls:live:${current}`), instance)
    await watcher.commands.pexpire(key, 300)
    assert.deepEqual(await leases.renew(), { lease: 'held', lapsed: false })
    assert.ok(await watcher.commands.pttl(key) > 300)
    for (const k of [`ls:node:${instance}`, `ls:live:${current}`]) assert.ok(await watcher.commands.pttl(k) > 4000, k)
    // Every served lease is listed and live.
    const id = leases.nextId()
    await leases.take()
    const next = leases.currentPrefix
    await leases.renew()
    assert.equal(await watcher.commands.get(`ls:node:${instance}`), `${current} ${next}`)
    assert.deepEqual(await watcher.commands.mget(`ls:live:${current}`, `ls:live:${next}`), [instance, instance])
    // Ran out (this node stalled, or was cut off): taken back, and said.
    await watcher.commands.del(`ls:node:${instance}`)
    assert.deepEqual(await leases.renew(), { lease: 'held', lapsed: true })
    await watcher.commands.del(slotKey(next))
    assert.deepEqual(await leases.renew(), { lease: 'expired', lapsed: false })
    assert.equal(logged.at(40).length, 0)
    // Leaving takes the presence with it.
    leases.released(id)
    await leases.release()
    assert.deepEqual(await watcher.commands.exists(`ls:node:${instance}`, `ls:live:${current}`, `ls:live:${next}`), 0)
  })

  test('a new lease when the old one has no connection drops the old one at once', async () => {
    const { leases, channels } = await node()
    const old = leases.currentPrefix
    leases.released(leases.nextId())
    await leases.take()
    assert.notEqual(leases.currentPrefix, old)
    assert.deepEqual(leases.prefixes(), [leases.currentPrefix])
    await until(async () => await subscribers(watcher.commands, channels.of(old)) === 0, 5000, () => 'the old channel to be left')
    assert.equal(await subscribers(watcher.commands, channels.of(leases.currentPrefix)), 1)
  })

  test('the counter running low takes a new lease; past its end a typed error, never an id of another lease', async () => {
    const { leases } = await node()
    const first = leases.currentPrefix
    let id = 0
    // 2^23 - 1 ids in one go: the new lease, started at 90 %, cannot land before this loop yields.
    for (let i = 1; i <= MAX_COUNTER; i++) id = leases.nextId()
    assert.equal(id, makeId(first, MAX_COUNTER))
    assert.throws(() => leases.nextId(), (err: Error & { code?: string, statusCode?: number }) => {
      assert.deepEqual([err.code, err.statusCode], ['FST_SIPWS_CLUSTER_UNAVAILABLE', 503])
      assert.equal(err.message, 'cluster: no ids left under the current lease and no new lease yet')
      return true
    })
    await until(() => leases.currentPrefix !== first, 5000, () => 'the new lease')
    assert.equal(leases.nextId(), makeId(leases.currentPrefix, 1))
    assert.deepEqual(leases.prefixes().sort(), [first, leases.currentPrefix].sort(), 'the old lease\'s connections are still served')
    assert.equal(await watcher.commands.get(slotKey(first)), `- ${leaseOf(first).epoch}`, 'the old slot released')
  })

  test('with every slot held, take fails with a typed error, and a failed renewal keeps the current lease', async () => {
    const parts = await node()
    const { leases, logged } = parts
    const current = leases.currentPrefix
    const pipeline = watcher.commands.pipeline()
    for (let slot = 0; slot < MAX_SLOTS; slot++) if (slot !== leaseOf(current).slot) pipeline.set(`ls:slot:${slot}`, `other ${slot}`, 'PX', 60_000)
    await pipeline.exec()
    const late = await joinedParts(redis.url, { keyPrefix: 'ls' }).then(() => null, (err: Error & { code?: string }) => err)
    assert.equal(late?.code, 'FST_SIPWS_CLUSTER_UNAVAILABLE')
    assert.equal(late?.message, 'cluster: all 256 slots are held by other nodes')
    // Its own slot taken too: it cannot move, so it goes on under the lease it has, and says so.
    await watcher.commands.set(slotKey(current), 'intruder 1', 'PX', 60_000)
    assert.equal((await leases.renew()).lease, 'lost')
    const failed = await logged.next('could not take a new lease', 5000)
    assert.equal(failed.level, 50)
    assert.equal((failed.err as { code: string }).code, 'FST_SIPWS_CLUSTER_UNAVAILABLE')
    assert.equal(leases.currentPrefix, current)
    assert.equal(idPrefix(leases.nextId()), current)
    // Reported lost once, however often renewing finds it so.
    assert.equal((await leases.renew()).lease, 'held')
    assert.equal(logged.entries.filter((e) => e.msg.includes('slot taken by another node')).length, 1)
  })
})
