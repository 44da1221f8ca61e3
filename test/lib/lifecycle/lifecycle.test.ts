import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import WebSocket from 'ws'
import type { WsClosedEvent } from '../../../lib'
import { within } from '../../helpers/pool'
import { handshakeLines, rawRequest, request } from '../../helpers/raw'
import { connect, handshakeOutcome, startApp, tally } from '../../helpers/server'

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
