import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { WsClosedEvent } from '../../../lib'
import { closePayload, frame, rawWebSocket } from '../../helpers/frames'
import { within } from '../../helpers/pool'
import { closed, connect, startApp } from '../../helpers/server'

function collector (): { events: WsClosedEvent[], next: () => Promise<WsClosedEvent>, hook: (e: WsClosedEvent) => void } {
  const events: WsClosedEvent[] = []
  const waiters: Array<(e: WsClosedEvent) => void> = []
  let taken = 0
  return {
    events,
    hook: (e) => {
      events.push(e)
      const w = waiters.shift()
      if (w !== undefined) { taken++; w(e) }
    },
    next: async () => {
      if (events.length > taken) return events[taken++]
      return await new Promise((resolve) => waiters.push(resolve))
    }
  }
}

describe('close and websocket:closed', () => {
  test('local close: wsClose(id) sends the code and reason, the event fires once with by "local"', async () => {
    const c = collector()
    const s = await startApp({}, (app) => { app.addWsHook('websocket:closed', c.hook) })
    try {
      const ws = await connect(s.url)
      const id = s.app.wsDump().connections[0].id
      const seen = closed(ws)
      assert.equal(s.app.wsClose(id, 4000, 'bye now'), true)
      assert.deepEqual(await seen, { code: 4000, reason: 'bye now' })
      const e = await c.next()
      assert.deepEqual({ id: e.id, by: e.by, code: e.code, reason: e.reason, subProtocol: e.subProtocol, remoteAddress: e.remoteAddress }, { id, by: 'local', code: 4000, reason: 'bye now', subProtocol: 'sip', remoteAddress: '127.0.0.1' })
      assert.equal(typeof e.remotePort, 'number')
      assert.equal(s.app.wsClose(id), false, 'closed ids are unknown')
      assert.equal(s.app.wsConnection(id), undefined)
      assert.equal(c.events.length, 1)
    } finally { await s.app.close() }
  })

  test('wsClose defaults to 1000 "Normal closure"; unknown ids give false; bad codes throw', async () => {
    const s = await startApp()
    try {
      const ws = await connect(s.url)
      const seen = closed(ws)
      assert.equal(s.app.wsClose(999999), false)
      assert.throws(() => s.app.wsClose(1, 1005), { code: 'FST_SIPWS_INVALID_CLOSE' })
      assert.throws(() => s.app.wsClose(1, 1000, 'x'.repeat(124)), { code: 'FST_SIPWS_INVALID_CLOSE' })
      assert.equal(s.app.wsClose(s.app.wsDump().connections[0].id), true)
      assert.deepEqual(await seen, { code: 1000, reason: 'Normal closure' })
    } finally { await s.app.close() }
  })

  test('wsClose needs an integer id: a missing one (a typo) throws FST_SIPWS_BAD_CONNECTION_ID (400) and closes nothing', async () => {
    const c = collector()
    const s = await startApp({}, (app) => { app.addWsHook('websocket:closed', c.hook) })
    try {
      const clients = await Promise.all([connect(s.url), connect(s.url)])
      const ids = s.app.wsDump().connections.map((conn) => conn.id)
      for (const bad of [undefined, null, '1', 1.5, Number.NaN, {}]) {
        assert.throws(() => (s.app.wsClose as (id: unknown) => boolean)(bad), (err: Error & { code?: string, statusCode?: number }) => {
          assert.equal(err.code, 'FST_SIPWS_BAD_CONNECTION_ID')
          assert.equal(err.statusCode, 400)
          assert.match(err.message, /^wsClose: expected a connection id \(an integer\), got /)
          return true
        }, String(bad))
      }
      // Arguments that are wrong carry 400 too: a route that passes a request's values on answers 400.
      assert.throws(() => s.app.wsClose(ids[0], 1005), { code: 'FST_SIPWS_INVALID_CLOSE', statusCode: 400 })
      assert.throws(() => s.app.wsDump('newest' as never), { code: 'FST_SIPWS_BAD_DUMP_ORDER', statusCode: 400 })
      assert.throws(() => s.app.wsSend(ids[0], 42 as never), { code: 'FST_SIPWS_INVALID_ARGUMENT', statusCode: 400 })
      assert.deepEqual(s.app.wsDump().connections.map((conn) => [conn.id, conn.state]), ids.map((id) => [id, 'OPEN']))
      assert.equal(s.app.wsStats().ws_local_closed_connections, 0)
      const seen = closed(clients[1])
      assert.equal(s.app.wsClose(ids[1]), true)
      assert.deepEqual(await seen, { code: 1000, reason: 'Normal closure' })
      assert.equal((await c.next()).id, ids[1])
      assert.equal(s.app.wsConnection(ids[0])?.state, 'OPEN', 'the other connection is untouched')
    } finally { await s.app.close() }
  })

  test('wsCloseAll(status, reason) closes every open connection and returns how many', async () => {
    const c = collector()
    const s = await startApp({}, (app) => { app.addWsHook('websocket:closed', c.hook) })
    try {
      const clients = await Promise.all([connect(s.url), connect(s.url), connect(s.url)])
      const all = Promise.all(clients.map(closed))
      assert.throws(() => s.app.wsCloseAll(999), { code: 'FST_SIPWS_INVALID_CLOSE', statusCode: 400 })
      assert.equal(s.app.wsDump().connections.filter((conn) => conn.state === 'OPEN').length, 3, 'a bad status closes nothing')
      assert.equal(s.app.wsCloseAll(1001, 'maintenance'), 3)
      assert.equal(s.app.wsCloseAll(), 0, 'closing ones are not closed again')
      for (const r of await all) assert.deepEqual(r, { code: 1001, reason: 'maintenance' })
      for (let i = 0; i < 3; i++) assert.deepEqual((({ by, code, reason }) => ({ by, code, reason }))(await c.next()), { by: 'local', code: 1001, reason: 'maintenance' })
      assert.equal(s.app.wsCloseAll(), 0, 'nothing left to close')
      const late = await connect(s.url)
      const seen = closed(late)
      assert.equal(s.app.wsCloseAll(), 1)
      assert.deepEqual(await seen, { code: 1000, reason: 'Normal closure' })
    } finally { await s.app.close() }
  })

  test('a peer that never answers the Close is terminated after closeTimeout', async () => {
    const c = collector()
    const s = await startApp({ closeTimeout: 200 }, (app) => { app.addWsHook('websocket:closed', c.hook) })
    try {
      const raw = await rawWebSocket(s.port)
      const id = s.app.wsDump().connections[0].id
      const started = Date.now()
      s.app.wsClose(id)
      assert.equal((await raw.closeFrame())?.code, 1000)
      await raw.ended
      const e = await c.next()
      assert.equal(e.by, 'local')
      assert.ok(Date.now() - started >= 150, 'waited for the peer first')
    } finally { await s.app.close() }
  })

  test('remote close and a vanished peer: by "remote", once each', async () => {
    const c = collector()
    const s = await startApp({}, (app) => { app.addWsHook('websocket:closed', c.hook) })
    try {
      const ws = await connect(s.url)
      ws.close(4100, 'client leaves')
      const e = await c.next()
      assert.deepEqual([e.by, e.code, e.reason], ['remote', 4100, 'client leaves'])
      const raw = await rawWebSocket(s.port)
      raw.socket.destroy()
      const gone = await c.next()
      assert.deepEqual([gone.by, gone.code], ['remote', 1006])
      assert.equal(c.events.length, 2)
    } finally { await s.app.close() }
  })

  test('protocol error: by "error", counted as a failed connection', async () => {
    const c = collector()
    const s = await startApp({}, (app) => { app.addWsHook('websocket:closed', c.hook) })
    try {
      const raw = await rawWebSocket(s.port)
      raw.write(frame(1, 'x', { mask: false }))
      const e = await c.next()
      assert.deepEqual([e.by, e.code, e.reason], ['error', 1002, 'Protocol error'])
      assert.equal(s.app.wsStats().ws_failed_connections, 1)
      assert.equal(s.app.wsStats().ws_sip_failed_connections, 1)
    } finally { await s.app.close() }
  })

  test('app.close() closes every open connection with 1001 "Going Away" and fires closed for each', async () => {
    const c = collector()
    const s = await startApp({}, (app) => { app.addWsHook('websocket:closed', c.hook) })
    const clients = await Promise.all([connect(s.url), connect(s.url, 'msrp'), connect(s.url)])
    const raw = await rawWebSocket(s.port)
    const seen = Promise.all(clients.map(closed))
    await s.app.close()
    for (const r of await seen) assert.deepEqual(r, { code: 1001, reason: 'Going Away' })
    assert.deepEqual(await raw.closeFrame(), { code: 1001, reason: 'Going Away' })
    assert.equal(c.events.length, 4)
    assert.deepEqual(new Set(c.events.map((e) => e.id)).size, 4)
    for (const e of c.events) assert.deepEqual([e.by, e.code, e.reason], ['local', 1001, 'Going Away'])
    assert.equal(s.app.wsStats().ws_current_connections, 0)
  })

  test('app.close() finishes within closeTimeout even when a peer ignores the Close', async () => {
    const c = collector()
    const CLOSE_TIMEOUT = 300
    const s = await startApp({ closeTimeout: CLOSE_TIMEOUT }, (app) => { app.addWsHook('websocket:closed', c.hook) })
    const raw = await rawWebSocket(s.port)
    raw.socket.pause()
    const started = performance.now()
    await within(s.app.close(), CLOSE_TIMEOUT + 2000, () => 'app.close() with a peer that ignores the Close')
    const took = performance.now() - started
    assert.ok(took >= CLOSE_TIMEOUT - 25, `waited ${took.toFixed(0)} ms for the peer's Close first`)
    assert.equal(c.events.length, 1)
    assert.equal(c.events[0].code, 1001)
    raw.socket.destroy()
  })

  test("after the peer's Close, whatever its code, the connection is CLOSING: nothing more is sent", async () => {
    const c = collector()
    const s = await startApp({ closeTimeout: 5000 }, (app) => { app.addWsHook('websocket:closed', c.hook) })
    try {
      for (const code of [1001, 4000, 1000]) {
        const raw = await rawWebSocket(s.port)
        const id = s.app.wsDump('used_asc').connections[0].id
        // A browser tab going away sends 1001 and may leave the TCP connection up a while.
        raw.write(frame(8, closePayload(code, 'tab closed')))
        const answer = await raw.closeFrame()
        assert.equal(answer?.code, code === 1000 ? 1000 : code)
        assert.equal(s.app.wsConnection(id)?.state, 'CLOSING', 'still registered while TCP lingers')
        assert.equal(s.app.wsSend(id, 'NOTIFY'), false)
        assert.equal(s.app.wsPing(id), false)
        assert.equal(s.app.wsPong(id), false)
        assert.equal(s.app.wsClose(id), false)
        raw.socket.destroy()
        const e = await c.next()
        assert.deepEqual([e.id, e.by, e.code], [id, 'remote', code])
        assert.equal(await raw.next(100).catch(() => null), null, 'no frame followed the Close')
      }
    } finally { await s.app.close() }
  })

  test('closed events fire exactly once under a mix of closes', async () => {
    const c = collector()
    const s = await startApp({}, (app) => { app.addWsHook('websocket:closed', c.hook) })
    const clients = await Promise.all(Array.from({ length: 20 }, async () => await connect(s.url)))
    const ids = s.app.wsDump().connections.map((x) => x.id)
    clients.forEach((ws, i) => {
      if (i % 4 === 0) ws.close()
      else if (i % 4 === 1) ws.terminate()
      else if (i % 4 === 2) s.app.wsClose(ids[i])
    })
    await s.app.close()
    assert.equal(c.events.length, 20)
    assert.deepEqual(new Set(c.events.map((e) => e.id)), new Set(ids))
  })
})
