import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { after, before, describe, test } from 'node:test'
import IORedis from 'ioredis'
import { RedisLink } from '../../../lib/cluster/link'
import { redisPair } from '../../../lib/cluster/redis'
import { recordedLog } from '../../helpers/cluster-parts'
import { until, within } from '../../helpers/pool'
import { startRedis, type RedisServer } from '../../helpers/redis'
import { reportedSetUp } from '../../helpers/set-up'

const LATE = 3000

async function ended (client: IORedis): Promise<void> {
  if (client.status !== 'end') await within(new Promise((resolve) => { client.once('end', resolve) }), 2000, () => 'the client to end')
}

// Reconnects are tried at least every 500 ms (redis.ts): a client let go tries none in twice that.
const RETRY_WINDOW = 1200

/** Resolves after a window in which `count` must not grow: no client comes back once let go. */
async function noMoreAttempts (count: () => number | Promise<number>, what: string): Promise<void> {
  const seen = await count()
  await new Promise((resolve) => setTimeout(resolve, RETRY_WINDOW))
  assert.equal(await count(), seen, what)
}

describe('the Redis link', () => {
  let redis: RedisServer
  before(reportedSetUp(async () => { redis = await startRedis() }))
  after(async () => { await redis?.stop() })

  test('connect brings both connections up, then joins; ready and up since then', async () => {
    const logged = recordedLog()
    const link = new RedisLink(redisPair(redis.url), 'n1', logged.log, () => {})
    assert.deepEqual([link.ready, link.upSince], [false, 0])
    let seenInJoin: string[] = []
    const before = Date.now()
    await link.connect(5000, async () => { seenInJoin = [link.commands.status, link.subscriber.status] })
    try {
      assert.deepEqual(seenInJoin, ['ready', 'ready'], 'join runs once both are up')
      assert.equal(link.ready, true)
      assert.ok(link.upSince >= before && link.upSince <= Date.now())
    } finally {
      await link.close(async () => {}, 1000)
    }
    await ended(link.commands)
    await ended(link.subscriber)
    assert.equal(link.ready, false)
  })

  test('no Redis on the port: a typed error at once, and the connections are let go', async () => {
    // Something that takes connections and drops them at once, counting them: not Redis.
    let attempts = 0
    const notRedis = createServer((socket) => { attempts++; socket.destroy() })
    notRedis.listen(0, '127.0.0.1')
    await once(notRedis, 'listening')
    const { port } = notRedis.address() as { port: number }
    try {
      const logged = recordedLog()
      const link = new RedisLink(redisPair(`redis://127.0.0.1:${port}`), 'n1', logged.log, () => {})
      let joined = false
      const started = performance.now()
      await assert.rejects(link.connect(10_000, async () => { joined = true }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'FST_SIPWS_CLUSTER_UNAVAILABLE')
        assert.match(err.message, /^cluster: cannot reach Redis: /)
        return true
      })
      assert.ok(performance.now() - started < 10_000, 'not held until connectTimeout')
      assert.equal(joined, false)
      assert.equal(link.ready, false)
      let retries = 0
      for (const client of [link.commands, link.subscriber]) client.on('connecting', () => { retries++ })
      await noMoreAttempts(() => retries, 'no reconnect after the connect failed')
      assert.ok(attempts >= 1 && attempts <= 2, `one attempt per connection at most, saw ${attempts}`)
      // ioredis's errors go to the logger (debug), never to the console.
      assert.ok(logged.at(20).includes('fastify-sip-ws: cluster: Redis connection error'))
    } finally {
      notRedis.close()
    }
  })

  test('a join that does not finish within connectTimeout fails with a typed error naming it', async () => {
    const link = new RedisLink(redisPair(redis.url), 'n1', recordedLog().log, () => {})
    const started = performance.now()
    await assert.rejects(link.connect(300, async () => { await new Promise(() => {}) }), {
      code: 'FST_SIPWS_CLUSTER_UNAVAILABLE',
      message: 'cluster: no Redis within connectTimeout (300 ms)'
    })
    const took = performance.now() - started
    assert.ok(took >= 295 && took < 300 + LATE, `${took} ms`)
    await ended(link.commands)
    await ended(link.subscriber)
  })

  test('a join that fails fails the connect with its own error', async () => {
    const link = new RedisLink(redisPair(redis.url), 'n1', recordedLog().log, () => {})
    await assert.rejects(link.connect(5000, async () => { throw new Error('no slot') }), /^Error: no slot$/)
    await ended(link.commands)
    await ended(link.subscriber)
  })

  test('close says goodbye while Redis is up, before the connections go', async () => {
    const link = new RedisLink(redisPair(redis.url), 'n1', recordedLog().log, () => {})
    await link.connect(5000, async () => { await link.subscriber.subscribe('bye') })
    const heard = once(link.subscriber, 'message')
    let receivers = -1
    await link.close(async () => { receivers = await link.commands.publish('bye', 'n1 leaves') }, 1000)
    assert.equal(receivers, 1, 'the goodbye went out while both connections were up')
    assert.deepEqual(await within(heard, 2000, () => 'the goodbye'), ['bye', 'n1 leaves'])
    await ended(link.commands)
    await ended(link.subscriber)
  })

  test('Redis lost and back: up-since drops to 0 and returns, each logged once, onBack called once both are up', async () => {
    const logged = recordedLog()
    let backs = 0
    let readyAtBack = false
    const link = new RedisLink(redisPair(redis.url), 'n1', logged.log, () => { backs++; readyAtBack = link.ready })
    await link.connect(5000, async () => {})
    try {
      const firstUp = link.upSince
      await redis.kill()
      await until(() => link.upSince === 0, 5000, () => 'the link to see Redis go')
      assert.equal(link.ready, false)
      const lost = await logged.next('Redis connection lost', 2000)
      assert.deepEqual([lost.level, lost.instance], [40, 'n1'])
      await redis.restart()
      await until(() => backs > 0, 500 + LATE, () => 'onBack')
      assert.equal(readyAtBack, true, 'onBack only once both connections are ready')
      assert.ok(link.upSince >= firstUp)
      assert.equal((await logged.next('Redis is back', 1000)).level, 30)
      await until(() => link.ready, 1000, () => 'ready')
      assert.equal(backs, 1)
      assert.equal(logged.entries.filter((e) => e.msg.includes('Redis connection lost')).length, 1, 'one line for one outage')
    } finally {
      await link.close(async () => {}, 1000)
    }
  })

  test('while Redis is away, close lets go without a goodbye, and nothing reconnects when Redis is back', async () => {
    const link = new RedisLink(redisPair(redis.url), 'n1', recordedLog().log, () => {})
    await link.connect(5000, async () => {})
    await link.commands.client('SETNAME', 'link-under-test')
    await redis.kill()
    await until(() => !link.ready, 5000, () => 'the link to see Redis go')
    let farewells = 0
    await within(link.close(async () => { farewells++ }, 1000), 2000, () => 'the close')
    assert.equal(farewells, 0)
    await redis.restart()
    const probe = new IORedis(redis.url)
    try {
      await noMoreAttempts(async () => ((await probe.client('LIST')) as string).split('\n').filter((l) => l.includes('link-under-test') || /cmd=(subscribe|publish)/.test(l)).length, 'no connection of the closed link comes back')
      assert.equal(((await probe.client('LIST')) as string).trim().split('\n').length, 1, 'only the probe')
    } finally {
      probe.disconnect()
    }
  })

  test('a stalled Redis (socket open, nothing answered) holds close up no longer than its bound', async () => {
    const link = new RedisLink(redisPair(redis.url), 'n1', recordedLog().log, () => {})
    await link.connect(5000, async () => {})
    let farewellStarted = false
    process.kill(redis.pid(), 'SIGSTOP')
    try {
      const started = performance.now()
      await within(link.close(async () => { farewellStarted = true; await link.commands.publish('bye', 'n1 leaves') }, 300), 2 * 300 + LATE, () => 'the close')
      const took = performance.now() - started
      assert.ok(took >= 295, `the goodbye was given its time (${took.toFixed(0)} ms)`)
      assert.equal(farewellStarted, true)
    } finally {
      process.kill(redis.pid(), 'SIGCONT')
    }
    await ended(link.commands)
    await ended(link.subscriber)
  })
})
