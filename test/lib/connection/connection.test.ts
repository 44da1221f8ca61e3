import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import WebSocket from 'ws'
import type { WsClosedEvent } from '../../../lib'
import { Connection } from '../../../lib/connection/connection'
import { Stats } from '../../../lib/connection/stats'
import { frameParser } from '../../../lib/handshake/internals'
import { closePayload, frame, rawWebSocket } from '../../helpers/frames'
import { startPeer, type PeerServer } from '../../helpers/lwsc'
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

describe('the Connection state machine on a real ws pair', () => {
  const ADDRESS = { remoteAddress: '192.0.2.7', remotePort: 5060, localAddress: '127.0.0.1', localPort: 8080, transport: 'wss' as const }

  interface Pair {
    conn: Connection
    /** The client's end. */
    client: WebSocket
    /** The server's end, which the connection holds. */
    server: WebSocket
    /** What the client heard in the Close it got. */
    clientClosed: Promise<{ code: number, reason: string }>
    /** The connection's closed events, one per `finish` the server's 'close' made (null when it gave none). */
    finished: Array<WsClosedEvent | null>
    /** Resolves once the server's socket is closed, after `finish` ran. */
    serverClosed: Promise<void>
  }

  /**
   * A client and the server's end wrapped in a Connection, wired as the acceptor wires it: the peer's Close
   * reaches `peerClosing` from ws's frame parser before ws answers it, the socket's end `finish`.
   */
  async function pair (t: { after: (fn: () => Promise<void>) => void }, now = 1000): Promise<Pair> {
    const peer: PeerServer = await startPeer({ onMessage: () => {} })
    t.after(async () => { await peer.close() })
    const accepted = once(peer.wss, 'connection') as Promise<[WebSocket]>
    const client = new WebSocket(peer.url, 'sip')
    client.on('error', () => {})
    const clientClosed = once(client, 'close').then(([code, reason]) => ({ code: code as number, reason: String(reason) }))
    const [server] = await accepted
    await once(client, 'open')
    const conn = new Connection(42, ADDRESS, 'sip', server, new Stats(['sip']).forProtocol('sip'), now)
    frameParser(server).prependListener('conclude', (code: number) => { conn.peerClosing(code) })
    const finished: Array<WsClosedEvent | null> = []
    const serverClosed = new Promise<void>((resolve) => {
      server.on('close', (code: number, reason: Buffer) => { finished.push(conn.finish(code, reason)); resolve() })
    })
    return { conn, client, server, clientClosed, finished, serverClosed }
  }

  test('a new connection is OPEN and writable; describe gives its address, state and idle seconds', async (t) => {
    const p = await pair(t, 10_000)
    assert.deepEqual([p.conn.state, p.conn.isOpen, p.conn.writableSocket], ['OPEN', true, p.server])
    assert.deepEqual(p.conn.describe(12_999), {
      id: 42,
      remoteAddress: '192.0.2.7',
      remotePort: 5060,
      socketAddress: '192.0.2.7',
      socketPort: 5060,
      localAddress: '127.0.0.1',
      localPort: 8080,
      transport: 'wss',
      state: 'OPEN',
      subProtocol: 'sip',
      createdAt: 10_000,
      lastUsed: 10_000,
      lastUsedAgo: 2
    })
    // A clock that went back (or a lastUsed set after `now` was read) is 0 seconds, never negative.
    assert.equal(p.conn.describe(9_000).lastUsedAgo, 0)
    const proxied = new Connection(1, { ...ADDRESS, remotePort: 0, socketAddress: '10.0.0.2', socketPort: 40000 }, 'msrp', null, new Stats([]).forProtocol('msrp'), 0)
    assert.deepEqual([proxied.socketAddress, proxied.socketPort, proxied.remotePort, proxied.writableSocket], ['10.0.0.2', 40000, 0, null])
    p.client.terminate()
    await p.serverClosed
  })

  test('close: once, with the code and reason given; the event carries what we sent, whatever the peer echoed', async (t) => {
    const p = await pair(t)
    // The peer answers our Close with a code of its own.
    frameParser(p.client).prependListener('conclude', () => { p.client.close(4999, 'echo of mine') })
    assert.equal(p.conn.close('local', 4000, 'bye now'), true)
    assert.deepEqual([p.conn.state, p.conn.isOpen, p.conn.writableSocket], ['CLOSING', false, null])
    assert.equal(p.conn.close('keepalive', 1001, 'again'), false, 'a close under way is not started again')
    assert.deepEqual(await p.clientClosed, { code: 4000, reason: 'bye now' })
    await p.serverClosed
    assert.equal(p.conn.state, 'CLOSED')
    assert.deepEqual(p.finished, [{ id: 42, remoteAddress: '192.0.2.7', remotePort: 5060, socketAddress: '192.0.2.7', socketPort: 5060, subProtocol: 'sip', code: 4000, reason: 'bye now', by: 'local' }])
    assert.equal(p.conn.finish(1006, Buffer.alloc(0)), null, 'the event is given once')
    assert.equal(p.conn.close('local', 1000, ''), false)
  })

  for (const [label, send, heard, eventCode, eventReason] of [
    ['1000', (ws: WebSocket) => { ws.close(1000, 'done') }, { code: 1000, reason: 'Normal closure' }, 1000, 'done'],
    ['an empty Close (1005)', (ws: WebSocket) => { ws.close() }, { code: 1000, reason: 'Normal closure' }, 1005, ''],
    ['4001', (ws: WebSocket) => { ws.close(4001, 'app') }, { code: 4001, reason: 'app' }, 4001, 'app'],
    ['1001', (ws: WebSocket) => { ws.close(1001, 'tab closed') }, { code: 1001, reason: 'tab closed' }, 1001, 'tab closed']
  ] as const) {
    test(`the peer's Close ${label}: CLOSING at once, nothing more may be sent; 1000 and an empty one answered 1000 "Normal closure" as Kamailio does, others echoed by ws; by "remote" with the peer's code`, async (t) => {
      const p = await pair(t)
      let stateAtConclude = ''
      frameParser(p.server).on('conclude', () => { stateAtConclude = p.conn.state })
      send(p.client)
      assert.deepEqual(await p.clientClosed, heard)
      assert.equal(stateAtConclude, 'CLOSING')
      assert.equal(p.conn.close('local', 1000, 'late'), false, 'no Close of ours after the peer\'s')
      await p.serverClosed
      assert.deepEqual(p.finished.map((e) => [e?.by, e?.code, e?.reason]), [['remote', eventCode, eventReason]])
    })
  }

  test('peerClosing after our own close changes nothing: the event stays ours', async (t) => {
    const p = await pair(t)
    p.conn.close('keepalive', 1001, 'Keepalive timeout')
    p.conn.peerClosing(1000)
    assert.deepEqual(await p.clientClosed, { code: 1001, reason: 'Keepalive timeout' })
    await p.serverClosed
    assert.deepEqual(p.finished.map((e) => [e?.by, e?.code, e?.reason]), [['keepalive', 1001, 'Keepalive timeout']])
  })

  test('failed: the error is why it closed, unless a close was under way', async (t) => {
    const broken = await pair(t)
    broken.conn.failed()
    broken.client.terminate()
    await broken.serverClosed
    assert.deepEqual(broken.finished.map((e) => [e?.by, e?.code]), [['error', 1006]], 'nothing of ours was sent: the code is what ws saw')

    const closing = await pair(t)
    closing.conn.close('local', 1000, 'Normal closure')
    closing.conn.failed()
    await closing.serverClosed
    assert.deepEqual(closing.finished.map((e) => [e?.by, e?.code]), [['local', 1000]])
  })

  test('a peer gone without a Close: by "remote" with 1006, finished once', async (t) => {
    const p = await pair(t)
    p.client.terminate()
    await p.serverClosed
    assert.deepEqual(p.finished.map((e) => [e?.by, e?.code, e?.reason]), [['remote', 1006, '']])
    assert.equal(p.conn.state, 'CLOSED')
    assert.equal(p.conn.finish(1006, Buffer.alloc(0)), null)
  })

  test('writableSocket is null as soon as ws leaves OPEN, though the connection has not been told yet', async (t) => {
    const p = await pair(t)
    // ws closing by itself, not through the connection: what ws does when its socket ends first.
    p.server.close(1000)
    assert.equal(p.server.readyState, WebSocket.CLOSING)
    assert.deepEqual([p.conn.state, p.conn.isOpen, p.conn.writableSocket], ['OPEN', true, null])
    await p.serverClosed
    assert.equal(p.conn.state, 'CLOSED')
  })

  test('a connection with no socket (synthetic) moves through the same states', () => {
    const conn = new Connection(7, ADDRESS, 'sip', null, new Stats([]).forProtocol('sip'), 0)
    assert.equal(conn.writableSocket, null)
    conn.peerClosing(1000)
    assert.equal(conn.state, 'OPEN', 'no socket, no peer to have closed')
    assert.equal(conn.close('local', 1001, 'Going Away'), true)
    assert.equal(conn.state, 'CLOSING')
    assert.deepEqual(conn.finish(1006, Buffer.alloc(0)), { id: 7, remoteAddress: '192.0.2.7', remotePort: 5060, socketAddress: '192.0.2.7', socketPort: 5060, subProtocol: 'sip', code: 1001, reason: 'Going Away', by: 'local' })
  })
})
