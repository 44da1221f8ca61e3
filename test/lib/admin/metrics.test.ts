import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { setImmediate as tick } from 'node:timers/promises'
import Fastify from 'fastify'
import { Gauge, Registry as PromRegistry } from 'prom-client'
import sipWs, { type StatsSnapshot } from '../../../lib'
import { registerMetrics } from '../../../lib/admin/metrics'
import { Stats } from '../../../lib/connection/stats'
import type { PromRegistryLike } from '../../../lib/options'
import { settledMemory } from '../../helpers/memory'
import { connect, startApp } from '../../helpers/server'

function sample (text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(name + ' '))
  return line === undefined ? undefined : Number(line.slice(name.length + 1))
}

describe('Prometheus gauges over an app\'s life', () => {
  test('gauges leave the registry at close: register, close and register again on one registry (tests, hot reload)', async () => {
    const registry = new PromRegistry()
    for (let round = 1; round <= 3; round++) {
      const s = await startApp({ metrics: { registry } })
      const clients = await Promise.all(Array.from({ length: round }, async () => await connect(s.url)))
      const text = await registry.metrics()
      // This app's numbers: not a closed one's.
      assert.equal(sample(text, 'websocket_ws_current_connections'), round)
      assert.equal(sample(text, 'websocket_ws_successful_handshakes'), round)
      for (const ws of clients) ws.terminate()
      await s.app.close()
      assert.equal(registry.getSingleMetric('websocket_ws_current_connections'), undefined)
      assert.equal(registry.getMetricsAsArray().length, 0, 'every gauge went')
    }
  })

  test('two live apps on one registry: the same prefix fails register naming metrics.prefix; another prefix works', async () => {
    const registry = new PromRegistry()
    const first = await startApp({ metrics: { registry } })
    try {
      const ws = await connect(first.url)
      const second = Fastify()
      await assert.rejects(async () => { await second.register(sipWs, { metrics: { registry } }); await second.ready() }, (err: Error & { code?: string }) => {
        assert.equal(err.code, 'FST_SIPWS_INVALID_OPTION')
        assert.match(err.message, /^Invalid option "metrics\.prefix": "websocket_" names metrics this registry already has \(websocket_ws_/)
        return true
      })
      await second.close()
      // The failed register took nothing away from the first app.
      assert.equal(sample(await registry.metrics(), 'websocket_ws_current_connections'), 1)

      const third = await startApp({ metrics: { registry, prefix: 'edge2_' } })
      try {
        const text = await registry.metrics()
        assert.equal(sample(text, 'websocket_ws_current_connections'), 1)
        assert.equal(sample(text, 'edge2_ws_current_connections'), 0)
      } finally { await third.app.close() }
      assert.equal(registry.getSingleMetric('edge2_ws_current_connections'), undefined)
      assert.equal(sample(await registry.metrics(), 'websocket_ws_current_connections'), 1, 'closing one app leaves the other\'s gauges')
      ws.terminate()
    } finally { await first.app.close() }
  })

  test('a closed app is not kept alive by the registry it reported to', async () => {
    const registry = new PromRegistry()
    const refs: Array<WeakRef<object>> = []
    await (async () => {
      const app = Fastify()
      const hook = (): void => {}
      refs.push(new WeakRef(hook))
      await app.register(sipWs, { metrics: { registry } })
      app.addWsHook('websocket:message', hook)
      await app.ready()
      await app.close()
    })()
    await tick()
    settledMemory()
    await tick()
    assert.equal(refs[0].deref(), undefined, 'the app\'s hooks are still reachable from the registry')
    assert.equal(registry.getMetricsAsArray().length, 0)
  })
})

describe('registerMetrics on a bare app and a Stats of the test\'s own', () => {
  test('one gauge per statistic, named prefix + Kamailio name, read from the snapshot at each scrape', async (t) => {
    const stats = new Stats(['sip', 'kmsg'])
    let snapshots = 0
    const snapshot = (): StatsSnapshot => { snapshots++; return stats.snapshot() }
    const registry = new PromRegistry()
    const app = Fastify()
    t.after(async () => { await app.close() })
    registerMetrics(app, { registry, prefix: 'edge_' }, snapshot)
    const names = Object.keys(stats.snapshot())
    assert.deepEqual(registry.getMetricsAsArray().map((m) => (m as unknown as { name: string }).name).sort(), names.map((n) => `edge_${n}`).sort())
    assert.ok(names.includes('ws_kmsg_received_frames'))
    const read = snapshots
    const before = await registry.metrics()
    assert.match(before, /^# HELP edge_ws_sip_received_frames Kamailio websocket statistic ws_sip_received_frames$/m)
    assert.match(before, /^# TYPE edge_ws_sip_received_frames gauge$/m)
    assert.equal(sample(before, 'edge_ws_received_frames'), 0)
    assert.ok(snapshots > read, 'a scrape reads the statistics')

    const kmsg = stats.forProtocol('kmsg')
    stats.opened(kmsg)
    for (let i = 0; i < 3; i++) stats.received(kmsg)
    stats.handshakeFailed()
    const after = await registry.metrics()
    assert.deepEqual(['edge_ws_current_connections', 'edge_ws_kmsg_received_frames', 'edge_ws_received_frames', 'edge_ws_sip_received_frames', 'edge_ws_failed_handshakes'].map((n) => sample(after, n)), [1, 3, 3, 0, 1])
  })

  test('a statistic the snapshot no longer has reads 0', async (t) => {
    let full = true
    const snapshot = (): StatsSnapshot => (full ? { ws_a: 5, ws_b: 7 } : { ws_a: 6 }) as unknown as StatsSnapshot
    const registry = new PromRegistry()
    const app = Fastify()
    t.after(async () => { await app.close() })
    registerMetrics(app, { registry, prefix: 'p_' }, snapshot)
    assert.deepEqual([sample(await registry.metrics(), 'p_ws_a'), sample(await registry.metrics(), 'p_ws_b')], [5, 7])
    full = false
    const text = await registry.metrics()
    assert.deepEqual([sample(text, 'p_ws_a'), sample(text, 'p_ws_b')], [6, 0])
  })

  test('at close it removes its own gauges only: one the user put in its place meanwhile stays', async () => {
    const stats = new Stats([])
    const registry = new PromRegistry()
    const app = Fastify()
    registerMetrics(app, { registry, prefix: 'x_' }, () => stats.snapshot())
    registry.removeSingleMetric('x_ws_current_connections')
    const mine = new Gauge({ name: 'x_ws_current_connections', help: 'the user\'s own', registers: [registry] })
    mine.set(42)
    const other = new Gauge({ name: 'unrelated', help: 'not ours', registers: [registry] })
    other.set(1)
    await app.close()
    assert.equal(registry.getSingleMetric('x_ws_current_connections'), mine)
    assert.equal(registry.getSingleMetric('unrelated'), other)
    assert.deepEqual(registry.getMetricsAsArray().map((m) => (m as unknown as { name: string }).name).sort(), ['unrelated', 'x_ws_current_connections'])
    assert.equal(sample(await registry.metrics(), 'x_ws_current_connections'), 42)
  })

  test('a registry that is not a prom-client Registry, or a prefix already taken, fails naming the option and registers nothing', () => {
    const stats = new Stats([])
    const app = Fastify()
    for (const registry of [null, {}, { registerMetric: () => {}, getSingleMetric: () => undefined }] as unknown as PromRegistryLike[]) {
      assert.throws(() => { registerMetrics(app, { registry, prefix: 'x_' }, () => stats.snapshot()) }, (err: Error & { code?: string }) => {
        assert.equal(err.code, 'FST_SIPWS_INVALID_OPTION')
        assert.equal(err.message, 'Invalid option "metrics.registry": expected a prom-client Registry')
        return true
      }, JSON.stringify(registry))
    }
    const registry = new PromRegistry()
    const users = new Gauge({ name: 'x_ws_sip_received_frames', help: 'the user\'s', registers: [registry] })
    assert.throws(() => { registerMetrics(app, { registry, prefix: 'x_' }, () => stats.snapshot()) }, (err: Error & { code?: string }) => {
      assert.equal(err.code, 'FST_SIPWS_INVALID_OPTION')
      assert.match(err.message, /^Invalid option "metrics\.prefix": "x_" names metrics this registry already has \(x_ws_sip_received_frames\)/)
      return true
    })
    assert.deepEqual(registry.getMetricsAsArray(), [users], 'nothing of ours was registered')
  })
})
