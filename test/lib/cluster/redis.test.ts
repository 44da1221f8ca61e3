import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { cp, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import { after, before, describe, test } from 'node:test'
import IORedis from 'ioredis'
import { connected, redisPair } from '../../../lib/cluster/redis'
import { freePort } from '../../helpers/lwsc'
import { within } from '../../helpers/pool'
import { startRedis, type RedisServer } from '../../helpers/redis'
import { reportedSetUp } from '../../helpers/set-up'

const ROOT = join(__dirname, '..', '..', '..')

/** Resolves once a client has closed for good (quit() resolves with Redis's answer, a moment before). */
async function ended (client: IORedis): Promise<void> {
  if (client.status !== 'end') await within(new Promise((resolve) => { client.once('end', resolve) }), 2000, () => 'the client to end')
}

describe('the Redis pair', () => {
  let redis: RedisServer
  before(reportedSetUp(async () => { redis = await startRedis() }))
  after(async () => { await redis?.stop() })

  test('a redis:// URL gives two clients of our own, idle until connected, without an offline queue', async () => {
    const pair = redisPair(redis.url)
    try {
      assert.notEqual(pair.commands, pair.subscriber)
      for (const client of [pair.commands, pair.subscriber]) {
        assert.equal(client.status, 'wait', 'nothing connects before the node joins')
        assert.deepEqual([client.options.enableOfflineQueue, client.options.maxRetriesPerRequest, client.options.autoResubscribe], [false, 0, true])
      }
      // No queue: a command before the connection is up fails at once instead of waiting to be replayed.
      await assert.rejects(within(pair.commands.publish('x', 'y'), 2000, () => 'the refusal'), /enableOfflineQueue/)
      await Promise.all([connected(pair.commands), connected(pair.subscriber)])
      assert.deepEqual([pair.commands.status, pair.subscriber.status], ['ready', 'ready'])
      await pair.subscriber.subscribe('ch')
      const heard = once(pair.subscriber, 'message')
      assert.equal(await pair.commands.publish('ch', 'hello'), 1)
      assert.deepEqual(await within(heard, 2000, () => 'the message'), ['ch', 'hello'])
    } finally {
      await pair.quit(1000)
    }
    await ended(pair.commands)
    await ended(pair.subscriber)
  })

  test('ioredis options are kept, ours on top', async () => {
    const pair = redisPair({ host: '127.0.0.1', port: redis.port, db: 3, enableOfflineQueue: true, connectionName: 'sipws-test' })
    const probe = new IORedis(redis.url)
    try {
      await Promise.all([connected(pair.commands), connected(pair.subscriber)])
      assert.equal(pair.commands.options.enableOfflineQueue, false)
      await pair.commands.set('in-db-3', 'yes')
      assert.equal(await probe.get('in-db-3'), null, 'not in db 0')
      await probe.select(3)
      assert.equal(await probe.get('in-db-3'), 'yes')
      const clients = await probe.client('LIST') as string
      assert.equal(clients.split('\n').filter((line) => line.includes('name=sipws-test')).length, 2)
    } finally {
      await pair.quit(1000)
      probe.disconnect()
    }
  })

  test('a client passed in is used for commands and stays the user\'s; the subscriber is a duplicate of ours', async () => {
    const mine = new IORedis(redis.url)
    try {
      await connected(mine)
      const pair = redisPair(mine)
      assert.equal(pair.commands, mine)
      assert.notEqual(pair.subscriber, mine)
      assert.equal(pair.subscriber.options.enableOfflineQueue, false)
      assert.equal(pair.subscriber.options.port, redis.port)
      await connected(pair.commands)
      await connected(pair.subscriber)
      await pair.subscriber.subscribe('dup')
      assert.equal(await mine.publish('dup', 'x'), 1)
      await pair.quit(1000)
      await ended(pair.subscriber)
      assert.equal(mine.status, 'ready', 'the user\'s client is not closed')
      assert.equal(await mine.ping(), 'PONG')
    } finally {
      mine.disconnect()
    }
  })

  test('connected() connects an idle client, waits for one connecting, and returns for one ready', async () => {
    const idle = new IORedis(redis.url, { lazyConnect: true })
    const connecting = new IORedis(redis.url)
    try {
      assert.equal(connecting.status, 'connecting')
      await within(Promise.all([connected(idle), connected(connecting)]), 5000, () => 'both to connect')
      assert.deepEqual([idle.status, connecting.status], ['ready', 'ready'])
      await within(connected(idle), 100, () => 'a ready client')
    } finally {
      idle.disconnect()
      connecting.disconnect()
    }
  })

  test('a Redis restart: commands fail at once while it is away, both clients are back soon after it returns', async () => {
    const pair = redisPair(redis.url)
    try {
      await Promise.all([connected(pair.commands), connected(pair.subscriber)])
      const closed = Promise.all([pair.commands, pair.subscriber].map(async (c) => { await new Promise((resolve) => { c.once('close', resolve) }) }))
      await redis.kill()
      await within(closed, 5000, () => 'the clients to see Redis go')
      await assert.rejects(within(pair.commands.publish('x', 'y'), 1000, () => 'a command while Redis is away'))
      // (events.once would reject on the connection errors while Redis is down.)
      const back = Promise.all([pair.commands, pair.subscriber].map(async (c) => { await new Promise((resolve) => { c.once('ready', resolve) }) }))
      await redis.restart()
      // Retries are at most 500 ms apart.
      await within(back, 500 + 3000, () => 'both clients back')
      assert.equal(await pair.commands.ping(), 'PONG')
    } finally {
      await pair.quit(1000)
    }
  })

  test('quit lets clients go whether or not Redis is there', async () => {
    const never = redisPair(`redis://127.0.0.1:${await freePort()}`)
    await within(never.quit(1000), 2000, () => 'quit of clients never connected')
    await ended(never.commands)
    await ended(never.subscriber)
  })
})

test('without ioredis installed, a cluster gets FST_SIPWS_INVALID_OPTION naming what to install', async () => {
  // A tree holding the module and what it needs, without ioredis, so its require fails as in an app that
  // never installed the optional peer dependency.
  const dir = await mkdtemp(join(tmpdir(), 'sipws-no-ioredis-'))
  try {
    await mkdir(join(dir, 'lib', 'cluster'), { recursive: true })
    await mkdir(join(dir, 'lib', 'lwsc'), { recursive: true })
    await mkdir(join(dir, 'node_modules', '@fastify'), { recursive: true })
    await cp(join(ROOT, 'lib', 'errors.ts'), join(dir, 'lib', 'errors.ts'))
    await cp(join(ROOT, 'lib', 'lwsc', 'error-url.ts'), join(dir, 'lib', 'lwsc', 'error-url.ts'))
    await cp(join(ROOT, 'lib', 'cluster', 'redis.ts'), join(dir, 'lib', 'cluster', 'redis.ts'))
    await symlink(dirname(require.resolve('@fastify/error/package.json')), join(dir, 'node_modules', '@fastify', 'error'))
    await writeFile(join(dir, 'main.ts'), [
      "import { redisPair } from './lib/cluster/redis'",
      "try { redisPair('redis://127.0.0.1:1'); console.log('no error') } catch (err) {",
      '  const e = err as Error & { code: string, statusCode: number }',
      '  console.log(JSON.stringify({ code: e.code, statusCode: e.statusCode, message: e.message }))',
      '}'
    ].join('\n'))
    const tsx = pathToFileURL(require.resolve('tsx')).href
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', tsx, join(dir, 'main.ts')], { cwd: dir, timeout: 30_000 })
    assert.deepEqual(JSON.parse(stdout), {
      code: 'FST_SIPWS_INVALID_OPTION',
      statusCode: 500,
      message: 'Invalid option "cluster.redis": needs the ioredis package installed (npm install ioredis)'
    })
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
