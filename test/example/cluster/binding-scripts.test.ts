import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import IORedis from 'ioredis'
import { FIND, PURGE, PUT, REMOVE } from '../../../example/cluster/binding-scripts'
import { redisPerSuite } from '../../helpers/redis-suite'

const BASE = '{sipws}:reg:'

describe('the bindings\' Lua scripts in a real Redis', () => {
  let client: IORedis
  redisPerSuite((_redis, connected) => { client = connected })

  test('each compiles', async () => {
    for (const script of [PUT, REMOVE, PURGE, FIND]) assert.match(await client.script('LOAD', script) as string, /^[0-9a-f]{40}$/)
  })

  test('PURGE reads the node\'s presence key atomically; connection ids past 2^52 are compared as text', async () => {
    const id = 255 * 2 ** 45 + 2 ** 45 - 1
    assert.ok(id > 2 ** 52 && Number.isSafeInteger(id))
    const write = async (): Promise<void> => {
      await client.hset(`${BASE}aor:zoe`, 'z1@x.invalid', `${id} node-z ${Date.now() + 60_000} ${Date.now()} sip:z1@x.invalid`)
      await client.sadd(`${BASE}node:node-z`, 'zoe\nz1@x.invalid')
      await client.set(`${BASE}conn:${id}`, '{}')
    }
    await write()
    await client.set('sipws:node:node-z', '1')
    assert.equal(await client.eval(PURGE, 2, `${BASE}node:node-z`, 'sipws:node:node-z', 'node-z', BASE), -1)
    await client.del('sipws:node:node-z')
    assert.equal(await client.eval(PURGE, 2, `${BASE}node:node-z`, 'sipws:node:node-z', 'node-z', BASE), 1)
    assert.deepEqual([await client.hlen(`${BASE}aor:zoe`), await client.exists(`${BASE}conn:${id}`), await client.exists(`${BASE}node:node-z`)], [0, 0, 0])
  })
})
