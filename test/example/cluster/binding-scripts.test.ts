import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import IORedis from 'ioredis'
import { FIND, PURGE, PUT, REMOVE } from '../../../example/cluster/binding-scripts'
import { MAX_COUNTER, makeId, prefixOf } from '../../../lib/cluster/ids'
import { startRedis, type RedisServer } from '../../helpers/redis'
import { reportedSetUp } from '../../helpers/set-up'

const BASE = '{sipws}:reg:'

describe('the bindings\' Lua scripts in a real Redis', () => {
  let redis: RedisServer
  let client: IORedis

  before(reportedSetUp(async () => {
    redis = await startRedis()
    client = new IORedis(redis.url)
  }))
  after(async () => {
    client?.disconnect()
    await redis?.stop()
  })

  test('each compiles', async () => {
    for (const script of [PUT, REMOVE, PURGE, FIND]) assert.match(await client.script('LOAD', script) as string, /^[0-9a-f]{40}$/)
  })

  test('PURGE reads the lease an id names exactly, up to the largest id (slot 255, the last epoch and counter: past 2^52)', async () => {
    const lease = { slot: 255, epoch: 2 ** 22 - 1 }
    const id = makeId(prefixOf(lease), MAX_COUNTER)
    assert.ok(id > 2 ** 52 && Number.isSafeInteger(id))
    const member = 'zoe\nz1@x.invalid'
    const write = async (): Promise<void> => {
      await client.hset(`${BASE}aor:zoe`, 'z1@x.invalid', `${id} node-z ${Date.now() + 60_000} ${Date.now()} sip:z1@x.invalid`)
      await client.sadd(`${BASE}node:node-z`, member)
    }
    await write()
    await client.set('sipws:slot:255', `node-z ${lease.epoch}`)
    assert.equal(await client.eval(PURGE, 1, `${BASE}node:node-z`, 'node-z', BASE, 'sipws:slot:'), -1)
    await client.set('sipws:slot:255', `node-z ${lease.epoch - 1}`)
    assert.equal(await client.eval(PURGE, 1, `${BASE}node:node-z`, 'node-z', BASE, 'sipws:slot:'), 1)
    assert.equal(await client.hlen(`${BASE}aor:zoe`), 0)
    // With no binding left to name a lease, a hint still can.
    await write()
    await client.set('sipws:slot:255', `node-z ${lease.epoch}`)
    assert.equal(await client.eval(PURGE, 1, `${BASE}node:node-y`, 'node-z', BASE, 'sipws:slot:', String(prefixOf(lease))), -1)
  })
})
