import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import WebSocket from 'ws'
import type { WsClosedEvent } from '../../../lib'
import type { Connection } from '../../../lib/connection/connection'
import { HookDispatcher } from '../../../lib/connection/hook-queue'
import { Lifecycle } from '../../../lib/lifecycle/lifecycle'
import { startEdge, type StartedEdge } from '../../helpers/edge'
import { recordedLog } from '../../helpers/log'
import { within } from '../../helpers/pool'
import { handshakeLines, rawRequest, request } from '../../helpers/raw'
import { connect, handshakeOutcome, loggedApp, startApp, tally } from '../../helpers/server'

const LATE = 2000

/** The status (and Retry-After) a new handshake gets now. */
async function handshake (port: number): Promise<string> {
  const res = await rawRequest(port, request(handshakeLines(port)))
  res.socket.destroy()
  return `${res.status}${res.headers['retry-after'] === undefined ? '' : ` Retry-After ${res.headers['retry-after']}`}`
}

async function rpc (port: number, method: string, params?: unknown[]): Promise<{ status: number, body: { result?: unknown, error?: { code: number, message: string } } }> {
  const res = await fetch(`http://127.0.0.1:${port}/RPC`, { method: 'POST', body: JSON.stringify({ jsonrpc: '2.0', method, params, id: 1 }), signal: AbortSignal.timeout(5000) })
  return { status: res.status, body: await res.json() as { result?: unknown, error?: { code: number, message: string } } }
}

describe('wsDrain', () => {
  test('closes every connection with 1001, spread over `within`; handshakes get 503 with Retry-After meanwhile and after', async (t) => {
    const WITHIN = 1000
    const closed: Array<{ event: WsClosedEvent, at: number }> = []
    let hooksDone = 0
    const s = await startApp({}, (app) => {
      app.addWsHook('websocket:closed', async (event) => {
        closed.push({ event, at: performance.now() })
        await new Promise((resolve) => setTimeout(resolve, 50))
        hooksDone++
      })
    })
    try {
      const clients = await Promise.all(Array.from({ length: 20 }, async () => await connect(s.url)))
      const seen = clients.map(async (ws) => (await once(ws, 'close') as [number, Buffer]).map(String))
      const started = performance.now()
      const drained = s.app.wsDrain({ within: WITHIN })
      assert.equal(await handshake(s.port), '503 Retry-After 5', 'no new connection while draining')
      await within(drained, WITHIN + LATE, () => 'the drain')
      const took = performance.now() - started
      assert.equal(hooksDone, 20, 'resolves once the closed hooks have run')
      for (const close of await Promise.all(seen)) assert.deepEqual(close, ['1001', 'Going Away'])
      for (const { event } of closed) assert.deepEqual([event.by, event.code], ['local', 1001])
      const spread = closed[closed.length - 1].at - closed[0].at
      t.diagnostic(`20 connections drained over ${WITHIN} ms: first close after ${(closed[0].at - started).toFixed(0)} ms, last after ${(closed[19].at - started).toFixed(0)} ms; resolved after ${took.toFixed(0)} ms`)
      // Evenly spread: the last starts at 19/20 of the way.
      assert.ok(spread >= 0.8 * WITHIN, `closes spread over ${spread.toFixed(0)} ms`)
      assert.equal(s.app.wsDump().wscounter, 0)
      assert.equal(await handshake(s.port), '503 Retry-After 5', 'a drained node stays out of service')
      s.app.wsEnable()
      assert.equal(await handshake(s.port), '101')
    } finally { await s.app.close() }
  })

  test('wsEnable() ends a drain early: the rest stay open', async () => {
    const s = await startApp()
    try {
      const clients = await Promise.all(Array.from({ length: 10 }, async () => await connect(s.url)))
      const first = once(clients[0], 'close')
      const drained = s.app.wsDrain({ within: 60_000 })
      await within(first, LATE, () => 'the first close')
      s.app.wsEnable()
      await within(drained, LATE, () => 'the drain to resolve once ended')
      assert.ok(s.app.wsDump().wscounter >= 8, `${s.app.wsDump().wscounter} left open`)
      assert.equal(await handshake(s.port), '101')
      for (const ws of clients) ws.terminate()
    } finally { await s.app.close() }
  })

  test('app.close() during a drain closes the rest at once', async () => {
    const s = await startApp()
    await Promise.all(Array.from({ length: 10 }, async () => await connect(s.url)))
    const drained = s.app.wsDrain({ within: 60_000 })
    await within(s.app.close(), 5000 + LATE, () => 'app.close() during a drain')
    await within(drained, LATE, () => 'the drain')
  })

  test('a bad `within` is a typed 400 error', async () => {
    const s = await startApp()
    try {
      for (const within of [-1, 1.5, Number.NaN, '1000' as unknown as number]) {
        await assert.rejects(s.app.wsDrain({ within }), (err: Error & { code?: string, statusCode?: number }) => {
          assert.deepEqual([err.code, err.statusCode], ['FST_SIPWS_INVALID_DRAIN', 400])
          assert.match(err.message, /within must be a whole number of milliseconds/)
          return true
        })
      }
      assert.equal(await handshake(s.port), '101', 'a refused drain changes nothing')
    } finally { await s.app.close() }
  })

  test('RPC ws.drain starts a drain and answers at once; ws.enable ends it', async () => {
    const s = await startApp({ rpc: { path: '/RPC' } })
    try {
      const clients = await Promise.all(Array.from({ length: 3 }, async () => await connect(s.url)))
      assert.deepEqual(await rpc(s.port, 'ws.drain', ['x']), { status: 500, body: { jsonrpc: '2.0', error: { code: 500, message: 'Invalid Parameters' }, id: 1 } })
      assert.equal(s.app.wsDump().wscounter, 3, 'a refused call closes nothing')
      const closes = clients.map(async (ws) => await once(ws, 'close'))
      assert.deepEqual(await rpc(s.port, 'ws.drain', [500]), { status: 200, body: { jsonrpc: '2.0', result: { connections: 3, within: 500 }, id: 1 } })
      assert.equal(await handshake(s.port), '503 Retry-After 5')
      await within(Promise.all(closes), 500 + LATE, () => 'the drained connections')
      assert.deepEqual((await rpc(s.port, 'ws.enable')).body.result, {})
      assert.equal(await handshake(s.port), '101')
    } finally { await s.app.close() }
  })

  test('1,000 connections over 5 s with clients that reconnect at once: closes per second, and what the reconnects got', { timeout: 60_000 }, async (t) => {
    const COUNT = 1000
    const WITHIN = 5000
    const s = await startApp({})
    const closesAt: number[] = []
    const reconnects = tally(COUNT)
    try {
      const clients: WebSocket[] = []
      for (let i = 0; i < COUNT; i += 100) clients.push(...await Promise.all(Array.from({ length: 100 }, async () => await connect(s.url))))
      let started = 0
      for (const ws of clients) {
        ws.on('close', () => {
          closesAt.push(performance.now() - started)
          // Reconnect at once, as a naive client would: the node must turn it away, not take it back.
          void handshakeOutcome(s.url).then(reconnects.add)
        })
      }
      started = performance.now()
      await within(s.app.wsDrain({ within: WITHIN }), WITHIN + 5000 + LATE, () => 'the drain of 1,000')
      const took = performance.now() - started
      await within(reconnects.all, LATE, () => 'the reconnects to settle')
      const perSecond = Array.from({ length: Math.ceil(Math.max(...closesAt) / 1000) }, (_, second) => closesAt.filter((at) => at >= second * 1000 && at < (second + 1) * 1000).length)
      t.diagnostic(`drain of ${COUNT} over ${WITHIN} ms took ${took.toFixed(0)} ms; closes per second: ${perSecond.join(', ')}; reconnects: ${JSON.stringify(Object.fromEntries(reconnects.counts))}`)
      assert.equal(closesAt.length, COUNT)
      assert.equal(reconnects.counts.get('503 Retry-After 5'), COUNT, 'every reconnect was turned away with 503 and Retry-After')
      // Spread: no second of the five takes much more than its fifth.
      for (const n of perSecond.slice(0, 5)) assert.ok(n <= 0.3 * COUNT, `closes per second ${perSecond.join(', ')}`)
      assert.ok(took >= WITHIN * 0.95, `took ${took.toFixed(0)} ms`)
    } finally { await s.app.close() }
  })
})

describe('Lifecycle on an edge\'s parts', () => {
  /** A Lifecycle of the test's own over the edge's server, registry and keepalive; `upgradesClosed` records when it stops upgrades. */
  function ownLifecycle (s: StartedEdge): { lifecycle: Lifecycle, logged: ReturnType<typeof recordedLog>, upgradesClosed: number[] } {
    const logged = recordedLog('info')
    const upgradesClosed: number[] = []
    const dispatcher = new HookDispatcher<Connection>(s.hooks, { hookTimeout: s.settings.hookTimeout, queueLimit: s.settings.hookQueueLimit }, { pause: () => {}, resume: () => {} }, logged.log)
    const lifecycle = new Lifecycle(s.settings, {
      server: s.edge.server,
      registry: s.edge.registry,
      keepalive: s.edge.keepalive,
      dispatcher,
      closeUpgrades: () => { upgradesClosed.push(s.edge.registry.size) }
    }, logged.log)
    return { lifecycle, logged, upgradesClosed }
  }

  test('enabled, draining, shutting down: what each says to a handshake and logs', async (t) => {
    const s = await startEdge()
    t.after(s.close)
    const { lifecycle, logged } = ownLifecycle(s)
    assert.deepEqual([lifecycle.enabled, lifecycle.leavingRefusal()], [true, null])
    lifecycle.setEnabled(false)
    // Disabled is not leaving: admission answers it by itself, without Retry-After.
    assert.deepEqual([lifecycle.enabled, lifecycle.leavingRefusal()], [false, null])
    lifecycle.setEnabled(true)
    assert.equal(lifecycle.enabled, true)

    await within(lifecycle.drain(0), 2000, () => 'a drain with nothing to close')
    const draining = { status: 503, headers: { 'Retry-After': '5' }, message: 'WebSocket service draining: connect to another node' }
    assert.deepEqual(lifecycle.leavingRefusal(), draining, 'a drained node stays out of service')
    lifecycle.setEnabled(true)
    assert.equal(lifecycle.leavingRefusal(), null, 'enabling ends a drain')

    const shuttingDown = { status: 503, headers: { 'Retry-After': '5' }, message: 'WebSocket service shutting down' }
    assert.deepEqual(lifecycle.beginShutdown(), shuttingDown)
    lifecycle.setEnabled(true)
    await lifecycle.drain(0)
    assert.deepEqual(lifecycle.leavingRefusal(), shuttingDown, 'neither enabling nor a drain takes back a shutdown')
    assert.deepEqual(logged.messages(), [
      'fastify-sip-ws: disabled; new WebSocket handshakes get 503',
      'fastify-sip-ws: enabled',
      'fastify-sip-ws: draining; new handshakes get 503',
      'fastify-sip-ws: enabled',
      'fastify-sip-ws: enabled',
      'fastify-sip-ws: draining; new handshakes get 503'
    ])
  })

  test('drain called again while one runs waits for it: every connection is closed once', async (t) => {
    const s = await startEdge()
    t.after(s.close)
    const clients = await Promise.all(Array.from({ length: 4 }, async () => await connect(s.url)))
    const codes = clients.map(async (ws) => (await once(ws, 'close') as [number, Buffer]).map(String))
    const localBefore = s.edge.stats.snapshot().ws_local_closed_connections
    const first = s.edge.lifecycle.drain(300)
    const second = s.edge.lifecycle.drain(0)
    await within(Promise.all([first, second]), 300 + LATE, () => 'two drains')
    assert.equal(s.edge.registry.size, 0, 'the second resolved only once the first was done')
    for (const close of await Promise.all(codes)) assert.deepEqual(close, ['1001', 'Going Away'])
    assert.equal(s.edge.stats.snapshot().ws_local_closed_connections - localBefore, 4)
  })

  test('shutdown: Close 1001 to every connection, then, once none is left, no more upgrades', async (t) => {
    const s = await startEdge()
    t.after(s.close)
    const { lifecycle, upgradesClosed } = ownLifecycle(s)
    const clients = await Promise.all(Array.from({ length: 3 }, async () => await connect(s.url)))
    const codes = clients.map(async (ws) => (await once(ws, 'close') as [number, Buffer]).map(String))
    await within(lifecycle.shutdown(), s.settings.closeTimeout + LATE, () => 'shutdown')
    assert.deepEqual(upgradesClosed, [0], 'upgrades stopped once, after the last connection went')
    for (const close of await Promise.all(codes)) assert.deepEqual(close, ['1001', 'Going Away'])
    assert.equal(lifecycle.leavingRefusal()?.message, 'WebSocket service shutting down')
  })

  test('shutdown waits for closed hooks up to hookTimeout, then goes on and logs how many connections were left with hooks', async (t) => {
    const HOOK_TIMEOUT = 300
    const log = loggedApp('warn')
    // Each hook is given up on after hookTimeout, so two in a row outlast the shutdown's own wait.
    const s = await startEdge({ hookTimeout: HOOK_TIMEOUT }, (app, hooks) => {
      hooks.add(app, 'websocket:closed', async () => { await new Promise(() => {}) })
      hooks.add(app, 'websocket:closed', async () => { await new Promise(() => {}) })
    }, log.fastifyOptions)
    t.after(s.close)
    await Promise.all([connect(s.url), connect(s.url)])
    const started = performance.now()
    await within(s.edge.lifecycle.shutdown(), s.settings.closeTimeout + HOOK_TIMEOUT + LATE, () => 'shutdown with hung hooks')
    const took = performance.now() - started
    assert.ok(took >= HOOK_TIMEOUT - 25, `waited ${took.toFixed(0)} ms`)
    const warned = log.entries.filter((e) => e.msg === 'fastify-sip-ws: hooks still running after hookTimeout; not waiting for them')
    assert.deepEqual(warned.map((e) => [e.connections, e.hookTimeout]), [[2, HOOK_TIMEOUT]])
  })
})
