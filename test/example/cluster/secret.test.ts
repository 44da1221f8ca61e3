import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import IORedis from 'ioredis'
import { ClusterSecret } from '../../../example/cluster/secret'
import { startRedis, type RedisServer } from '../../helpers/redis'
import { reportedSetUp } from '../../helpers/set-up'

describe('the cluster secret', () => {
  let redis: RedisServer
  let one: IORedis
  let two: IORedis

  before(reportedSetUp(async () => {
    redis = await startRedis()
    one = new IORedis(redis.url)
    two = new IORedis(redis.url)
  }))
  after(async () => {
    one?.disconnect()
    two?.disconnect()
    await redis?.stop()
  })

  test('the first node writes it, the others read it; after Redis lost it, reassert writes it back; a different one is told', async () => {
    const [first, second] = await Promise.all([ClusterSecret.agree(one, 'sipws'), ClusterSecret.agree(two, 'sipws')])
    assert.deepEqual(first.keys, second.keys)
    assert.notDeepEqual(first.keys.via, first.keys.flowTokens, 'one key per use')
    await one.flushall()
    assert.equal(await second.reassert(), true)
    assert.equal(await first.reassert(), true, 'the same secret: both agree still')
    await one.set('{sipws}:reg:secret', 'another')
    assert.equal(await first.reassert(), false)
  })
})
