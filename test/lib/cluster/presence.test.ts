import assert from 'node:assert/strict'
import { beforeEach, describe, test } from 'node:test'
import IORedis from 'ioredis'
import { nodeKey, Presence } from '../../../lib/cluster/presence'
import { until } from '../../helpers/pool'
import { redisPerSuite } from '../../helpers/redis-suite'

const TTL = 5000

describe('a node\'s presence in Redis', () => {
  let client: IORedis
  redisPerSuite((_redis, connected) => { client = connected })
  beforeEach(async () => { await client.flushall() })

  test('renew writes the node key (its served prefixes) and one key per prefix, each with the TTL; says whether it had lapsed', async () => {
    const presence = new Presence(client, 'pr', 'n1', TTL)
    assert.equal(nodeKey('pr', 'n1'), 'pr:node:n1')
    assert.equal(await presence.renew([7, 9]), false, 'not there before')
    assert.equal(await client.get('pr:node:n1'), '7 9')
    assert.deepEqual(await client.mget('pr:live:7', 'pr:live:9'), ['n1', 'n1'])
    for (const key of ['pr:node:n1', 'pr:live:7', 'pr:live:9']) {
      const left = await client.pttl(key)
      assert.ok(left > TTL - 1000 && left <= TTL, `${key}: ${left} ms`)
    }
    assert.equal(await presence.renew([9]), true)
    assert.equal(await client.get('pr:node:n1'), '9')
    // Ran out, or Redis lost it: lapsed.
    await client.del('pr:node:n1')
    assert.equal(await presence.renew([9]), false)
    assert.deepEqual((await client.keys('pr:*')).sort(), ['pr:live:7', 'pr:live:9', 'pr:node:n1'], 'O(prefixes) keys, nothing per connection')
  })

  test('alive and served read what the others wrote; drop and leave take keys out at once', async () => {
    const mine = new Presence(client, 'pr', 'n1', TTL)
    const other = new Presence(client, 'pr', 'n2', TTL)
    assert.deepEqual([await mine.alive('n2'), await mine.served(20)], [false, false])
    await other.renew([20, 21])
    assert.deepEqual([await mine.alive('n2'), await mine.served(20), await mine.served(21), await mine.served(22)], [true, true, true, false])
    await other.drop(20)
    assert.deepEqual([await mine.served(20), await mine.served(21), await mine.alive('n2')], [false, true, true])
    await mine.renew([30])
    await other.leave([21])
    assert.deepEqual([await mine.alive('n2'), await mine.served(21)], [false, false])
    assert.deepEqual([await other.alive('n1'), await other.served(30)], [true, true], 'another node\'s keys are left alone')
  })

  test('keys run out with the TTL when their node stops renewing them', async () => {
    const presence = new Presence(client, 'pr', 'n3', 200)
    await presence.renew([40])
    const reader = new Presence(client, 'pr', 'reader', TTL)
    assert.equal(await reader.alive('n3'), true)
    await until(async () => !await reader.alive('n3'), 5000, () => 'the node key to run out', 20)
    assert.deepEqual([await reader.alive('n3'), await reader.served(40)], [false, false])
  })
})
