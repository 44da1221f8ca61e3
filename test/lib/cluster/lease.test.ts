import assert from 'node:assert/strict'
import { beforeEach, describe, test } from 'node:test'
import IORedis from 'ioredis'
import { epochAt, MAX_SLOTS, prefixOf } from '../../../lib/cluster/ids'
import { holders, SlotLease, slotKey } from '../../../lib/cluster/lease'
import { until, within } from '../../helpers/pool'
import { type RedisServer } from '../../helpers/redis'
import { redisPerSuite } from '../../helpers/redis-suite'

const KEYS = 'lt'
const TTL = 5000
const key = (slot: number): string => slotKey(KEYS, slot)

describe('a slot lease', () => {
  let redis: RedisServer
  let client: IORedis
  redisPerSuite((started, connected) => { redis = started; client = connected })
  beforeEach(async () => { await client.flushall() })

  /** Every slot but `free` held by other nodes. */
  async function holdAllBut (free: number): Promise<void> {
    const pipeline = client.pipeline()
    for (let slot = 0; slot < MAX_SLOTS; slot++) if (slot !== free) pipeline.set(key(slot), `other ${slot}`, 'PX', 60_000)
    await pipeline.exec()
  }

  test('take holds a slot under "<instance> <epoch>" with the TTL; its prefix names slot and epoch', async () => {
    const lease = new SlotLease(client, KEYS, 'n1', TTL)
    assert.deepEqual([lease.lease, lease.prefix], [null, -1])
    assert.equal(await lease.renew(), 'lost', 'nothing to renew yet')
    await lease.release()
    const now = Date.now()
    const taken = await lease.take(now)
    assert.ok(taken !== null)
    assert.ok(Number.isInteger(taken.slot) && taken.slot >= 0 && taken.slot < MAX_SLOTS)
    assert.equal(taken.epoch, epochAt(now))
    assert.equal(lease.prefix, prefixOf(taken))
    assert.equal(await client.get(key(taken.slot)), `n1 ${taken.epoch}`)
    const ttl = await client.pttl(key(taken.slot))
    assert.ok(ttl > 0 && ttl <= TTL, `${ttl} ms left`)
    assert.equal((await client.keys(`${KEYS}:*`)).length, 1, 'one key per node')
  })

  test('nodes starting together get different slots, not all from slot 0 up', async () => {
    const leases = Array.from({ length: 20 }, (_, i) => new SlotLease(client, KEYS, `n${i}`, TTL))
    const now = Date.now()
    const taken = await Promise.all(leases.map(async (l) => await l.take(now)))
    const slots = taken.map((t) => t?.slot ?? -1)
    assert.equal(new Set(slots).size, 20)
    assert.ok(!slots.includes(-1))
    // Random starts: 20 nodes all landing in the first 20 slots would mean they raced from slot 0.
    assert.ok(slots.some((s) => s >= 20), slots.join(','))
  })

  test('a held slot is skipped; with every slot held, take returns null', async () => {
    await holdAllBut(77)
    const lease = new SlotLease(client, KEYS, 'n1', TTL)
    assert.equal((await lease.take(Date.now()))?.slot, 77)
    const late = new SlotLease(client, KEYS, 'n2', TTL)
    assert.equal(await late.take(Date.now()), null)
    assert.deepEqual([late.lease, late.prefix], [null, -1])
    assert.equal(await client.get(key(77)), `n1 ${String(lease.lease?.epoch)}`)
  })

  test('a slot is never taken twice in one second: a release leaves a tombstone that outlives the second', async () => {
    await holdAllBut(5)
    const now = Date.now()
    const first = new SlotLease(client, KEYS, 'n1', TTL)
    const { epoch } = await first.take(now) ?? { epoch: -1 }
    await first.release()
    assert.deepEqual([first.lease, first.prefix], [null, -1])
    assert.equal(await client.get(key(5)), `- ${epoch}`)
    const left = await client.pttl(key(5))
    assert.ok(left > 1000 && left <= 1500, `the tombstone lasts past the end of the second: ${left} ms`)
    // Another node in the same second: the slot is not free, so no lease with the same epoch exists twice.
    const second = new SlotLease(client, KEYS, 'n2', TTL)
    assert.equal(await second.take(now), null)
    // Once it is gone, the slot is free again, now in a later second: another epoch, another prefix.
    await until(async () => await client.exists(key(5)) === 0, 1500 + 3000, () => 'the tombstone to expire')
    const later = Date.now()
    const again = await second.take(later)
    assert.deepEqual(again, { slot: 5, epoch: epochAt(later) })
    assert.notEqual(epochAt(later), epoch)
    assert.notEqual(second.prefix, prefixOf({ slot: 5, epoch }))
  })

  test('renew keeps the TTL up; a release or a renew touches only our own lease', async () => {
    const lease = new SlotLease(client, KEYS, 'n1', TTL)
    const { slot } = await lease.take(Date.now()) ?? { slot: -1 }
    await client.pexpire(key(slot), 200)
    assert.equal(await lease.renew(), 'held')
    assert.ok(await client.pttl(key(slot)) > 200)
    // Another node holds it now (ours ran out while this node was away): not renewed, not released.
    await client.set(key(slot), 'other 1', 'PX', 60_000)
    assert.equal(await lease.renew(), 'lost')
    await lease.release()
    assert.equal(await client.get(key(slot)), 'other 1')
    // Nor is another node's tombstone.
    const mine = new SlotLease(client, KEYS, 'n3', TTL)
    const s3 = (await mine.take(Date.now()))?.slot ?? -1
    await client.set(key(s3), '- 1', 'PX', 60_000)
    assert.equal(await mine.renew(), 'lost')
    assert.equal(await client.get(key(s3)), '- 1')
  })

  test('a key Redis lost is taken back with the same epoch, so the ids made under it stay ours', async () => {
    const lease = new SlotLease(client, KEYS, 'n1', TTL)
    const taken = await lease.take(Date.now())
    assert.ok(taken !== null)
    const value = `n1 ${taken.epoch}`
    // Ran out unseen.
    await client.del(key(taken.slot))
    assert.equal(await lease.renew(), 'expired', 'said: the others may have counted it gone')
    assert.equal(await client.get(key(taken.slot)), value)
    assert.ok(await client.pttl(key(taken.slot)) > 0)
    // Redis restarted empty.
    // (events.once would reject on the connection errors while Redis is down.)
    const back = new Promise((resolve) => { client.once('ready', resolve) })
    await redis.restart()
    await within(back, 5000, () => 'the client to reconnect')
    assert.equal(await client.dbsize(), 0)
    assert.equal(await lease.renew(), 'expired')
    assert.equal(await lease.renew(), 'held')
    assert.equal(await client.get(key(taken.slot)), value)
    assert.deepEqual(lease.lease, taken)
  })
  test('holders lists every slot held, by instance, slot and epoch, from one read; released slots and junk are no holders', async () => {
    assert.deepEqual(await holders(client, KEYS), [])
    const a = new SlotLease(client, KEYS, 'node-a', TTL)
    const b = new SlotLease(client, KEYS, 'node-b', TTL)
    const [la, lb] = [await a.take(Date.now()), await b.take(Date.now())]
    assert.ok(la !== null && lb !== null)
    const gone = new SlotLease(client, KEYS, 'node-c', TTL)
    await gone.take(Date.now())
    await gone.release()
    await client.set(key(250 === la.slot || 250 === lb.slot ? 251 : 250), 'junk')
    await client.set(`other:slot:${la.slot}`, 'elsewhere 1')
    const found = await holders(client, KEYS)
    assert.deepEqual(found.sort((x, y) => x.slot - y.slot), [{ instance: 'node-a', ...la }, { instance: 'node-b', ...lb }].sort((x, y) => x.slot - y.slot))
  })
})
