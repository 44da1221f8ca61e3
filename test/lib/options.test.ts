import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import Fastify from 'fastify'
import sipWs from '../../lib'
import { resolveSettings } from '../../lib/options'
import { VERSION } from '../../lib/constants'

describe('options', () => {
  test('defaults follow Kamailio', () => {
    const s = resolveSettings({})
    assert.equal(s.path, '/')
    assert.deepEqual(s.enabledProtocols, ['sip', 'msrp'])
    assert.equal(s.corsMode, 0)
    assert.equal(s.keepaliveMechanism, 1)
    // Milliseconds, as Fastify's own durations: Kamailio's 180 s and 1 s.
    assert.equal(s.keepaliveTimeout, 180000)
    assert.equal(s.keepaliveInterval, 1000)
    assert.equal(s.closeTimeout, 5000)
    assert.equal(s.hookTimeout, 10000)
    assert.equal(s.hookQueueLimit, 262144)
    assert.equal(s.pingApplicationData, `fastify-sip-ws (${VERSION})`)
    assert.equal(s.maxPayload, 65536)
    assert.equal(s.handshakeTimeout, 10000)
    assert.deepEqual({ ...s.lwsc }, { protocol: 'kmsg', timeoutInit: 2000, timeoutRead: 2000, verbosity: 0, poolSize: 4, queueSize: 1024, keepaliveInterval: 5000, idleTimeout: 60000, maxEndpoints: 1024, reconnectBackoffMin: 100, reconnectBackoffMax: 2000, maxPayload: 16 * 1024 * 1024 })
  })

  test('rpc: no origin listed and any Host by default; origins kept as browsers write them', () => {
    assert.deepEqual({ ...resolveSettings({ rpc: {} }).rpc }, { path: '/RPC', allowedOrigins: [] })
    const rpc = resolveSettings({ rpc: { allowedOrigins: ['HTTPS://Admin.Example.com:443/', 'http://127.0.0.1:8080'], allowedHosts: ['admin.example.com', '[::1]:8080'] } }).rpc
    assert.deepEqual(rpc?.allowedOrigins, ['https://admin.example.com', 'http://127.0.0.1:8080'])
    assert.deepEqual(rpc?.allowedHosts, ['admin.example.com', '[::1]:8080'])
  })

  test('cluster.redis takes Sentinel options as given, and says what it expects of them', () => {
    const sentinel = { sentinels: [{ host: '127.0.0.1', port: 26379 }, { host: 'sentinel-2', port: 26380 }], name: 'mymaster', sentinelPassword: 'secret' }
    assert.deepEqual(resolveSettings({ cluster: { redis: sentinel } }).cluster?.redis, sentinel)
    assert.throws(() => resolveSettings({ cluster: { redis: { sentinels: [{ host: '127.0.0.1' }], name: 'm' } } }), {
      code: 'FST_SIPWS_INVALID_OPTION',
      message: /expected a redis:\/\/ URL, ioredis options \(for Sentinel: \{ sentinels: \[\{ host, port \}, \.\.\.\], name \}\) or an ioredis client/
    })
  })

  test('the bitmap and names map to protocol lists', () => {
    assert.deepEqual(resolveSettings({ subProtocols: 1 }).enabledProtocols, ['sip'])
    assert.deepEqual(resolveSettings({ subProtocols: 2 }).enabledProtocols, ['msrp'])
    assert.deepEqual(resolveSettings({ subProtocols: ['SIP', 'kmsg', 'sip'] }).enabledProtocols, ['sip', 'kmsg'])
  })

  const bad: Array<[string, Record<string, unknown>]> = [
    ['path', { path: 'ws' }],
    ['path', { path: [] }],
    ['subProtocols', { subProtocols: 4 }],
    ['subProtocols', { subProtocols: ['bad name'] }],
    ['corsMode', { corsMode: 3 }],
    ['keepaliveMechanism', { keepaliveMechanism: 'ping' }],
    ['keepaliveTimeout', { keepaliveTimeout: 0 }],
    ['keepaliveInterval', { keepaliveInterval: -1 }],
    ['hookTimeout', { hookTimeout: 0 }],
    ['hookQueueLimit', { hookQueueLimit: -1 }],
    ['pingApplicationData', { pingApplicationData: 'x'.repeat(126) }],
    // 63 characters, 126 bytes: a Ping could not carry it.
    ['pingApplicationData', { pingApplicationData: 'é'.repeat(63) }],
    ['maxPayload', { maxPayload: 1.5 }],
    ['closeTimeout', { closeTimeout: 0 }],
    ['maxConnections', { maxConnections: -1 }],
    ['handshakeTimeout', { handshakeTimeout: -1 }],
    ['handshakeTimeout', { handshakeTimeout: 2.5 }],
    ['rpc.path', { rpc: { path: 'RPC' } }],
    ['rpc.allowedOrigins', { rpc: { allowedOrigins: 'https://admin.example.com' } }],
    ['rpc.allowedOrigins.0', { rpc: { allowedOrigins: ['*'] } }],
    ['rpc.allowedOrigins.0', { rpc: { allowedOrigins: ['null'] } }],
    ['rpc.allowedOrigins.0', { rpc: { allowedOrigins: ['https://*.example.com'] } }],
    ['rpc.allowedOrigins.1', { rpc: { allowedOrigins: ['https://admin.example.com', 'https://admin.example.com/admin'] } }],
    ['rpc.allowedOrigins.0', { rpc: { allowedOrigins: ['ftp://admin.example.com'] } }],
    ['rpc.allowedOrigins.0', { rpc: { allowedOrigins: ['admin.example.com'] } }],
    ['rpc.allowedHosts', { rpc: { allowedHosts: [] } }],
    ['rpc.allowedHosts.0', { rpc: { allowedHosts: ['https://admin.example.com'] } }],
    ['rpc.allowedHosts.1', { rpc: { allowedHosts: ['admin.example.com', 'admin.example.com:port'] } }],
    ['lwsc.timeoutRead', { lwsc: { timeoutRead: 'slow' } }],
    ['lwsc.protocol', { lwsc: { protocol: '' } }],
    ['lwsc.reconnectBackoffMax', { lwsc: { reconnectBackoffMin: 500, reconnectBackoffMax: 100 } }],
    ['lwsc.idleTimeout', { lwsc: { idleTimeout: 5 } }],
    ['lwsc.maxEndpoints', { lwsc: { maxEndpoints: 0 } }],
    ['metrics.prefix', { metrics: { registry: {}, prefix: 'web-socket' } }],
    ['sipPort', { sipPort: 5060 }],
    // Sentinel options are checked at register, not at the first failover.
    ['cluster.redis', { cluster: { redis: { sentinels: [{ host: '127.0.0.1' }], name: 'mymaster' } } }],
    ['cluster.redis', { cluster: { redis: { sentinels: [{ host: '127.0.0.1', port: 0 }], name: 'mymaster' } } }],
    ['cluster.redis', { cluster: { redis: { sentinels: [], name: 'mymaster' } } }],
    ['cluster.redis', { cluster: { redis: { sentinels: [{ host: '127.0.0.1', port: 26379 }] } } }],
    ['cluster.redis', { cluster: { redis: { sentinels: '127.0.0.1:26379', name: 'mymaster' } } }]
  ]
  for (const [name, options] of bad) {
    test(`a bad ${name} fails register with an error naming it`, async () => {
      const app = Fastify()
      await assert.rejects(async () => { await app.register(sipWs, options); await app.ready() }, (err: Error & { code?: string }) => {
        assert.equal(err.code, 'FST_SIPWS_INVALID_OPTION')
        assert.ok(err.message.includes(`"${name}"`), err.message)
        return true
      })
      await app.close()
    })
  }

  // Kamailio gives these in seconds (lwsc in microseconds): a value in that unit must not run 1000× off.
  const unitMistakes: Array<[string, Record<string, unknown>, RegExp]> = [
    ['keepaliveTimeout', { keepaliveTimeout: 180 }, /milliseconds, at least 1000 \(Kamailio's keepalive_timeout is in seconds: 180 s is 180000 ms\), got 180/],
    ['keepaliveInterval', { keepaliveInterval: 1 }, /milliseconds, at least 100 .*keepalive_interval is in seconds/],
    ['closeTimeout', { closeTimeout: 5 }, /milliseconds, at least 100, got 5/],
    ['handshakeTimeout', { handshakeTimeout: 10 }, /milliseconds: 0 \(off\) or at least 100, got 10/],
    ['hookTimeout', { hookTimeout: 10 }, /milliseconds, at least 100, got 10/],
    ['lwsc.timeoutInit', { lwsc: { timeoutInit: 2000000 } }, /milliseconds, 100 to 600000 \(Kamailio's timeout_init is in microseconds/],
    ['lwsc.timeoutRead', { lwsc: { timeoutRead: 2 } }, /milliseconds, 100 to 600000/]
  ]
  for (const [name, options, message] of unitMistakes) {
    test(`${name} in the wrong unit fails register naming the unit`, async () => {
      const app = Fastify()
      await assert.rejects(async () => { await app.register(sipWs, options); await app.ready() }, (err: Error & { code?: string }) => {
        assert.equal(err.code, 'FST_SIPWS_INVALID_OPTION')
        assert.ok(err.message.includes(`"${name}"`), err.message)
        assert.match(err.message, message)
        return true
      })
      await app.close()
    })
  }

  test('keepaliveProcesses is accepted and logged as ignored', async () => {
    const lines: string[] = []
    const app = Fastify({ logger: { level: 'info', stream: { write: (l: string) => { lines.push(l) } } } })
    await app.register(sipWs, { keepaliveProcesses: 4 })
    await app.ready()
    assert.ok(lines.some((l) => l.includes('keepaliveProcesses is ignored')))
    await app.close()
  })
})
