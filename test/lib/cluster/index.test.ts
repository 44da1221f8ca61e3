import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import { createCluster, type ClusterOptions } from '../../../lib/cluster'
import { leaseOf } from '../../../lib/cluster/ids'
import { RedisCluster } from '../../../lib/cluster/node'
import { NO_CONNECTIONS } from '../../../lib/cluster/seam'
import { SingleProcess } from '../../../lib/cluster/single-process'
import type { ClusterNodeInfo, ClusterRejoinedEvent } from '../../../lib/cluster/types'
import { Hooks } from '../../../lib/hooks'
import { listen, recordedLog, type Listener } from '../../helpers/cluster-parts'
import { freePort } from '../../helpers/lwsc'
import { until } from '../../helpers/pool'
import { startRedis, type RedisServer } from '../../helpers/redis'
import { reportedSetUp } from '../../helpers/set-up'

const LATE = 3000

describe('createCluster', () => {
  let redis: RedisServer
  let watcher: Listener
  let app: FastifyInstance
  before(reportedSetUp(async () => {
    redis = await startRedis()
    watcher = await listen(redis.url)
    app = Fastify()
  }))
  after(async () => {
    await app?.close()
    await watcher?.close()
    await redis?.stop()
  })

  const options = (prefix: string, more: Partial<ClusterOptions> = {}): ClusterOptions => ({ redis: redis.url, prefix, nodeTimeout: 1000, requestTimeout: 500, connectTimeout: 5000, ...more })

  test('cluster mode off: this process alone', () => {
    const cluster = createCluster(undefined, new Hooks(recordedLog().log), 1000, recordedLog().log)
    assert.ok(cluster instanceof SingleProcess)
  })

  test('cluster mode on: a node of the cluster Redis holds, under its prefix, joining only at start', async () => {
    const logged = recordedLog()
    const cluster = createCluster(options('idx'), new Hooks(logged.log), 1000, logged.log)
    assert.ok(cluster instanceof RedisCluster)
    assert.deepEqual(await watcher.commands.keys('*'), [], 'nothing in Redis before start')
    await cluster.start(NO_CONNECTIONS)
    try {
      const [self] = cluster.nodes()
      assert.equal(self.instance, cluster.instance)
      assert.equal(await watcher.commands.get(`idx:slot:${self.slot}`), `${cluster.instance} ${leaseOf(self.prefixes[0]).epoch}`)
      assert.equal((await logged.next('cluster node up', 1000)).instance, cluster.instance)
    } finally {
      await cluster.stop()
    }
  })

  test('another node gone runs the cluster:node-down hooks, each bounded by hookTimeout', async () => {
    const logged = recordedLog()
    const hooks = new Hooks(logged.log)
    const seen: Array<{ hook: string, node: ClusterNodeInfo, self: unknown, at: number }> = []
    hooks.add(app, 'cluster:node-down', async function (node) { seen.push({ hook: 'stuck', node, self: this, at: performance.now() }); await new Promise(() => {}) })
    hooks.add(app, 'cluster:node-down', function (node) { seen.push({ hook: 'next', node, self: this, at: performance.now() }) })
    const survivor = createCluster(options('down'), hooks, 300, logged.log)
    const leaving = createCluster(options('down'), new Hooks(logged.log), 300, logged.log)
    await survivor.start(NO_CONNECTIONS)
    try {
      await leaving.start(NO_CONNECTIONS)
      await until(() => survivor.nodes().length === 2, 5000, () => 'the survivor to see the other node')
      await leaving.stop()
      await until(() => seen.length === 2, 300 + LATE, () => 'both hooks')
      assert.deepEqual(seen.map((s) => [s.hook, s.node.instance, s.self === app]), [['stuck', leaving.instance, true], ['next', leaving.instance, true]])
      assert.ok(seen[1].at - seen[0].at >= 295, 'the next hook ran once the stuck one had its hookTimeout')
      assert.deepEqual(survivor.nodes().map((n) => n.instance), [survivor.instance])
    } finally {
      await survivor.stop()
    }
  })

  test('this node back after its presence ran out runs the cluster:rejoined hooks, each bounded by hookTimeout', async () => {
    const logged = recordedLog()
    const hooks = new Hooks(logged.log)
    const seen: Array<{ hook: string, event: ClusterRejoinedEvent, self: unknown, at: number }> = []
    hooks.add(app, 'cluster:rejoined', async function (event) { seen.push({ hook: 'stuck', event, self: this, at: performance.now() }); await new Promise(() => {}) })
    hooks.add(app, 'cluster:rejoined', function (event) { seen.push({ hook: 'next', event, self: this, at: performance.now() }) })
    const cluster = createCluster(options('back'), hooks, 300, logged.log)
    await cluster.start(NO_CONNECTIONS)
    try {
      assert.equal(await watcher.commands.exists(`back:node:${cluster.instance}`), 1, 'present from the start')
      // Gone from Redis as if it had run out while this node was away.
      const removedAt = Date.now()
      await watcher.commands.del(`back:node:${cluster.instance}`)
      await until(() => seen.length === 2, 1000 + 300 + LATE, () => 'both hooks')
      assert.deepEqual(seen.map((s) => [s.hook, s.event.instance, s.event.reason, s.self === app]), [['stuck', cluster.instance, 'lease-expired', true], ['next', cluster.instance, 'lease-expired', true]])
      assert.ok(seen[0].event.gapMs > 0 && seen[0].event.gapMs <= Date.now() - removedAt + 1000, `gap ${seen[0].event.gapMs} ms`)
      assert.ok(seen[1].at - seen[0].at >= 295, 'the next hook ran once the stuck one had its hookTimeout')
      assert.equal(await watcher.commands.exists(`back:node:${cluster.instance}`), 1, 'written back before the hooks ran')
      const warned = await logged.next('this node may have been counted gone', 1000)
      assert.deepEqual([warned.level, warned.reason], [40, 'lease-expired'])
      // Once: the next renewals find it there.
      await new Promise((resolve) => setTimeout(resolve, 600))
      assert.equal(seen.length, 2)
    } finally {
      await cluster.stop()
    }
  })

  test('a Redis nobody answers on: start fails with a typed error', async () => {
    const logged = recordedLog()
    const cluster = createCluster(options('none', { redis: `redis://127.0.0.1:${await freePort()}`, connectTimeout: 500 }), new Hooks(logged.log), 1000, logged.log)
    const started = performance.now()
    await assert.rejects(cluster.start(NO_CONNECTIONS), { code: 'FST_SIPWS_CLUSTER_UNAVAILABLE' })
    assert.ok(performance.now() - started < 500 + LATE)
    await cluster.stop()
  })
})
