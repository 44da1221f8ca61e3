import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import IORedis from 'ioredis'
import sipWs from '../../../lib'
import { ClusterLink, NODE_TIMEOUT } from '../../../example/cluster/link'
import { RedisBindings } from '../../../example/cluster/redis-bindings'
import type { ConnectionLocal } from '../../../example/proxy/connection-local'
import { Parking } from '../../../example/proxy/parking'
import { Registrar } from '../../../example/proxy/registrar'
import { parseUri } from '../../../example/sip/uri'
import { startNode } from '../../helpers/cluster'
import { freePort } from '../../helpers/lwsc'
import { until, within } from '../../helpers/pool'
import { startRedis, type RedisServer } from '../../helpers/redis'
import { redisPerSuite } from '../../helpers/redis-suite'
import { loggedApp } from '../../helpers/server'
import { reportedSetUp } from '../../helpers/set-up'

const LOCAL: ConnectionLocal = { localAddress: '127.0.0.1', localPort: 8080 }

describe('ClusterLink: the example\'s own Redis connection', () => {
  let redis: RedisServer
  let client: IORedis
  redisPerSuite((started, connected) => { redis = started; client = connected })

  test('two links agree on the keys; the plugin\'s cluster option names the URL, the prefix and the node timeout', async () => {
    const [one, two] = await Promise.all([ClusterLink.open(redis.url), ClusterLink.open(redis.url)])
    try {
      assert.deepEqual(one.keys, two.keys)
      assert.deepEqual(one.pluginOptions, { redis: redis.url, prefix: 'sipws', nodeTimeout: NODE_TIMEOUT })
      assert.equal(await client.exists('{sipws}:reg:secret'), 1)
    } finally {
      one.close()
      two.close()
    }
  })

  test('a Redis that cannot be reached: rejected at once, naming REDIS_URL and the socket\'s error', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`
    await assert.rejects(ClusterLink.open(url), new RegExp(`^Error: REDIS_URL: cannot use Redis at ${url}: connect ECONNREFUSED`))
  })
})

describe('ClusterLink.watch: node-down purges, Redis coming back, close', () => {
  let redis: RedisServer
  let client: IORedis
  let app: FastifyInstance
  let link: ClusterLink
  const logged = loggedApp('info')

  before(reportedSetUp(async () => {
    redis = await startRedis()
    client = new IORedis(redis.url)
    link = await ClusterLink.open(redis.url)
    app = Fastify(logged.fastifyOptions)
    await app.register(sipWs, { cluster: link.pluginOptions })
    const connections = new Map([[1, LOCAL]])
    const locations = link.locations(app, connections, new Parking())
    const registrar = new Registrar(32, Date.now, locations)
    link.watch(app, locations, registrar)
    registrar.update('mia', 1, 'sip:m1@x.invalid', parseUri('sip:m1@x.invalid') ?? assert.fail(), new Map(), 600)
    await locations.written()
    await app.ready()
  }))
  after(async () => {
    await app?.close()
    client?.disconnect()
    await redis?.stop()
  })

  test('a node that went down has its bindings purged, logged with how many', async () => {
    const node = await startNode(redis.url)
    try {
      await new RedisBindings(client, 'sipws', node.instance).put({ aor: 'noah', connectionId: 5, uri: 'sip:n1@x.invalid', parsed: parseUri('sip:n1@x.invalid') ?? assert.fail(), params: new Map(), expiresAt: Date.now() + 60_000 }, LOCAL)
      // Heard before it dies: only a node this one knew can go down.
      await until(() => app.wsCluster.nodes().some((n) => n.instance === node.instance), 10_000, () => 'the node to be heard')
      node.signal('SIGKILL')
      const line = await within(logged.next('sip cluster: node down, its bindings purged'), NODE_TIMEOUT * 4, () => 'the purge')
      assert.deepEqual({ node: line.node, removed: line.removed }, { node: node.instance, removed: 1 })
      assert.equal(await client.exists(`{sipws}:reg:node:${node.instance}`), 0)
    } finally {
      await node.stop()
    }
  })

  test('counted gone while alive (its presence lapsed and a survivor purged it): cluster:rejoined writes its bindings back', async () => {
    const instance = app.wsCluster.instance
    // What a survivor's purge does once Redis says the node is gone: the node's presence lapses, its bindings go.
    await client.del(`sipws:node:${instance}`)
    await client.del('{sipws}:reg:aor:mia', `{sipws}:reg:node:${instance}`)
    const line = await within(logged.next('sip cluster: rejoined, bindings written again'), NODE_TIMEOUT * 2, () => 'the rewrite on cluster:rejoined')
    assert.equal(line.bindings, 1)
    await until(async () => await client.hlen('{sipws}:reg:aor:mia') === 1, 3000, () => 'mia\'s binding back in Redis')
    const rejoined = await logged.next('sip cluster: the others may have counted this node gone')
    assert.equal(rejoined.reason, 'lease-expired')
  })

  test('Redis restarted empty: the secret and this node\'s bindings are written again', async () => {
    const secret = await client.get('{sipws}:reg:secret')
    await redis.restart()
    const line = await within(logged.next('sip cluster: Redis is back, bindings written again'), 15_000, () => 'the resync')
    assert.equal(line.bindings, 1)
    const fresh = new IORedis(redis.url)
    try {
      assert.equal(await fresh.get('{sipws}:reg:secret'), secret)
      // The resync's writes were sent before the log line; a read on another connection may come first.
      await until(async () => await fresh.hlen('{sipws}:reg:aor:mia') === 1, 3000, () => 'mia\'s binding back in Redis')
    } finally {
      fresh.disconnect()
    }
  })

  test('closing the app quits the link\'s connection', async () => {
    const fresh = new IORedis(redis.url)
    try {
      const before = (await fresh.client('LIST') as string).split('\n').filter((l) => l !== '').length
      await app.close()
      const after = (await fresh.client('LIST') as string).split('\n').filter((l) => l !== '').length
      assert.ok(after < before, `clients before ${before}, after ${after}`)
    } finally {
      fresh.disconnect()
    }
  })
})
