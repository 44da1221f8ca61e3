import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { setImmediate as tick } from 'node:timers/promises'
import Fastify from 'fastify'
import { Registry as PromRegistry } from 'prom-client'
import sipWs from '../../../lib'
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
