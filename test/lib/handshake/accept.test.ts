import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, beforeEach, describe, test } from 'node:test'
import type { FastifyReply } from 'fastify'
import WebSocket from 'ws'
import type { WsClosedEvent, WsMessage, WsOpenEvent } from '../../../lib'
import { CurrentMessage } from '../../../lib/connection/current-message'
import { HookDispatcher } from '../../../lib/connection/hook-queue'
import type { Connection } from '../../../lib/connection/connection'
import { Acceptor } from '../../../lib/handshake/accept'
import { Telemetry } from '../../../lib/observe/telemetry'
import type { ConnectionAddress } from '../../../lib/types'
import { startEdge, type StartedEdge } from '../../helpers/edge'
import { closePayload, frame, rawWebSocket, type FrameReader } from '../../helpers/frames'
import { until } from '../../helpers/pool'
import { closed, connect, startApp, type Started } from '../../helpers/server'

const TEXT = 1
const BINARY = 2
const CLOSE = 8
const PING = 9
const PONG = 10

describe('SPEC §3 frames', () => {
  let s: Started
  const messages: WsMessage[] = []
  const closedEvents: WsClosedEvent[] = []
  let closedWaiters: Array<(e: WsClosedEvent) => void> = []

  async function nextClosed (): Promise<WsClosedEvent> {
    const e = closedEvents.shift()
    if (e !== undefined) return e
    return await new Promise((resolve) => closedWaiters.push(resolve))
  }

  before(async () => {
    s = await startApp({ maxPayload: 1024 }, (app) => {
      app.addWsHook('websocket:message', (m) => {
        messages.push(m)
        if (m.data === 'reply-text') app.wsSend(m.id, 'text back')
        if (m.data === 'reply-binary') app.wsSend(m.id, Buffer.from([0xff, 0, 1]))
      })
      app.addWsHook('websocket:closed', (e) => {
        const w = closedWaiters.shift()
        if (w !== undefined) w(e)
        else closedEvents.push(e)
      })
    })
  })
  after(async () => { await s.app.close() })
  beforeEach(() => { messages.length = 0; closedEvents.length = 0; closedWaiters = [] })

  async function expectErrorClose (ws: FrameReader, bytes: Buffer, code: number, reason: string): Promise<void> {
    const sizeBefore = s.app.wsDump().wscounter
    ws.write(bytes)
    const close = await ws.closeFrame()
    assert.deepEqual(close, { code, reason })
    const event = await nextClosed()
    assert.equal(event.by, 'error')
    assert.equal(event.code, code)
    await ws.ended
    assert.equal(s.app.wsDump().wscounter, sizeBefore - 1, 'registry entry removed')
    assert.equal(closedEvents.length, 0, 'closed fired once')
    assert.equal(messages.length, 0, 'nothing delivered')
  }

  test('Ping with payload gets a Pong with the same payload', async () => {
    const ws = await rawWebSocket(s.port)
    ws.write(frame(PING, 'are you there'))
    const pong = await ws.next()
    assert.equal(pong?.opcode, PONG)
    assert.equal(pong?.payload.toString(), 'are you there')
    ws.socket.destroy()
    assert.equal((await nextClosed()).by, 'remote')
  })

  for (const [label, payload] of [['Close 1000', closePayload(1000, 'bye')], ['empty Close', Buffer.alloc(0)]] as const) {
    test(`${label} is answered with Close 1000 "Normal closure", then TCP close`, async () => {
      const ws = await rawWebSocket(s.port)
      ws.write(frame(CLOSE, payload))
      assert.deepEqual(await ws.closeFrame(), { code: 1000, reason: 'Normal closure' })
      await ws.ended
      const event = await nextClosed()
      assert.equal(event.by, 'remote')
      assert.equal(event.code, payload.length === 0 ? 1005 : 1000)
    })
  }

  test('another Close code is echoed', async () => {
    const ws = await rawWebSocket(s.port)
    ws.write(frame(CLOSE, closePayload(4001, 'app')))
    assert.equal((await ws.closeFrame())?.code, 4001)
    const event = await nextClosed()
    assert.deepEqual([event.by, event.code, event.reason], ['remote', 4001, 'app'])
  })

  test('unmasked client frame: Close 1002 "Protocol error"', async () => {
    await expectErrorClose(await rawWebSocket(s.port), frame(TEXT, 'hi', { mask: false }), 1002, 'Protocol error')
  })

  test('RSV bits set without an extension: Close 1002', async () => {
    for (const rsv of [4, 2, 1]) {
      await expectErrorClose(await rawWebSocket(s.port), frame(TEXT, 'hi', { rsv }), 1002, 'Protocol error')
    }
  })

  test('reserved opcodes: Close 1002 (RFC 6455 §5.2)', async () => {
    for (const opcode of [3, 7, 0xb, 0xf]) {
      await expectErrorClose(await rawWebSocket(s.port), frame(opcode, 'x'), 1002, 'Protocol error')
    }
  })

  test('control frame over 125 bytes or fragmented: Close 1002', async () => {
    await expectErrorClose(await rawWebSocket(s.port), frame(PING, Buffer.alloc(126)), 1002, 'Protocol error')
    await expectErrorClose(await rawWebSocket(s.port), frame(PING, 'x', { fin: false }), 1002, 'Protocol error')
  })

  test('invalid UTF-8 in a text frame: Close 1007', async () => {
    await expectErrorClose(await rawWebSocket(s.port), frame(TEXT, Buffer.from([0x53, 0x49, 0xc3, 0x28])), 1007, 'Invalid frame payload data')
  })

  test('message over maxPayload: Close 1009', async () => {
    await expectErrorClose(await rawWebSocket(s.port), frame(BINARY, Buffer.alloc(1025)), 1009, 'Message too big')
    // Fragments count together.
    const ws = await rawWebSocket(s.port)
    ws.write(frame(TEXT, Buffer.alloc(600, 0x61), { fin: false }))
    await expectErrorClose(ws, frame(0, Buffer.alloc(600, 0x61)), 1009, 'Message too big')
  })

  test('a fragmented message is joined and delivered once', async () => {
    const ws = await rawWebSocket(s.port)
    ws.write(Buffer.concat([frame(TEXT, 'OPTIONS sip:', { fin: false }), frame(PING, 'p'), frame(0, 'a@b SIP/2.0', { fin: false }), frame(0, '\r\n\r\n')]))
    assert.equal((await ws.next())?.opcode, PONG)
    ws.write(frame(TEXT, 'reply-text'))
    const reply = await ws.next()
    assert.deepEqual([reply?.opcode, reply?.payload.toString()], [TEXT, 'text back'])
    assert.equal(messages.length, 2)
    assert.equal(messages[0].data, 'OPTIONS sip:a@b SIP/2.0\r\n\r\n')
    assert.equal(messages[0].binary, false)
    ws.socket.destroy()
    await nextClosed()
  })

  test('binary messages arrive as Buffers; wsSend of a Buffer goes as a binary frame', async () => {
    const ws = await rawWebSocket(s.port)
    ws.write(frame(BINARY, Buffer.from([0, 1, 2])))
    ws.write(frame(TEXT, 'reply-binary'))
    const reply = await ws.next()
    assert.equal(reply?.opcode, BINARY)
    assert.deepEqual([...(reply?.payload ?? [])], [0xff, 0, 1])
    assert.equal(messages[0].binary, true)
    assert.ok(Buffer.isBuffer(messages[0].data))
    assert.deepEqual([...(messages[0].data as Buffer)], [0, 1, 2])
    ws.socket.destroy()
    await nextClosed()
  })

  test('non-SIP text on a sip connection is delivered; the app decides', async () => {
    const ws = await connect(s.url)
    ws.send('definitely not SIP')
    ws.send('reply-text')
    await new Promise((resolve) => ws.once('message', resolve))
    assert.equal(messages[0].data, 'definitely not SIP')
    assert.equal(messages[0].subProtocol, 'sip')
    ws.terminate()
    await nextClosed()
  })

  test('the server keeps serving after every bad frame', async () => {
    const replyOf = async (ws: Awaited<ReturnType<typeof connect>>): Promise<string> => {
      const got = new Promise<string>((resolve) => ws.once('message', (data: Buffer) => { resolve(data.toString()) }))
      ws.send('reply-text')
      return await got
    }
    // Open before the bad frames and kept open through all of them.
    const survivor = await connect(s.url)
    const failedBefore = s.app.wsStats().ws_failed_connections
    const bad: Array<[Buffer, number]> = [
      [frame(TEXT, 'x', { mask: false }), 1002],
      [frame(TEXT, 'x', { rsv: 4 }), 1002],
      [frame(3, 'x'), 1002],
      [frame(TEXT, Buffer.from([0xc3, 0x28])), 1007],
      [frame(BINARY, Buffer.alloc(2000)), 1009]
    ]
    for (const [bytes, code] of bad) {
      const ws = await rawWebSocket(s.port)
      ws.write(bytes)
      assert.equal((await ws.closeFrame())?.code, code)
      await ws.ended
      assert.deepEqual([(await nextClosed()).by], ['error'])
    }
    assert.equal(s.app.wsStats().ws_failed_connections - failedBefore, bad.length, 'each bad frame cost its own connection')
    assert.equal(await replyOf(survivor), 'text back', 'a connection open all along still talks')
    const fresh = await connect(s.url)
    assert.equal(await replyOf(fresh), 'text back', 'a new connection is served')
    assert.equal(s.app.wsDump().wscounter, 2)
    survivor.terminate()
    fresh.terminate()
    await nextClosed()
    await nextClosed()
  })
})

describe('default maxPayload', () => {
  test('is 65536: a message of 65536 bytes passes, 65537 gets 1009', async () => {
    const got: number[] = []
    const s = await startApp({}, (app) => { app.addWsHook('websocket:message', (m) => { got.push(m.data.length); app.wsSend(m.id, 'ok') }) })
    try {
      const ws = await rawWebSocket(s.port)
      ws.write(frame(BINARY, Buffer.alloc(65536)))
      assert.equal((await ws.next())?.payload.toString(), 'ok')
      assert.deepEqual(got, [65536])
      ws.write(frame(BINARY, Buffer.alloc(65537)))
      assert.equal((await ws.closeFrame())?.code, 1009)
    } finally { await s.app.close() }
  })
})

/**
 * An Acceptor of the test's own on an edge's registry, statistics and keepalive: requests to /direct go
 * straight to `accept` with the sub-protocol the X-Protocol header names and a made-up peer address, past
 * every check and hook of the handshake path (the edge's own path is /edge).
 */
describe('Acceptor', () => {
  const PEER: ConnectionAddress = { remoteAddress: '198.51.100.5', remotePort: 5062, socketAddress: '10.0.0.9', socketPort: 40001, localAddress: '127.0.0.1', localPort: 5066, transport: 'wss' }
  let s: StartedEdge
  let acceptor: Acceptor
  let head: Buffer = Buffer.alloc(0)
  const replies: FastifyReply[] = []
  const messages: WsMessage[] = []
  const opened: WsOpenEvent[] = []
  const closedEvents: WsClosedEvent[] = []
  let onClosed: () => void = () => {}

  before(async () => {
    s = await startEdge({ path: ['/edge'] }, (app, hooks) => {
      app.addHook('onRequest', (request, reply, done) => {
        if (!request.url.startsWith('/direct') || request.ws !== true) { done(); return }
        replies.push(reply)
        acceptor.accept(request, reply, head, String(request.headers['x-protocol']), PEER)
      })
      hooks.add(app, 'websocket:open', (e) => { opened.push(e) })
      hooks.add(app, 'websocket:message', (m) => { messages.push(m) })
      hooks.add(app, 'websocket:closed', (e) => { closedEvents.push(e); onClosed() })
    })
    const { edge, hooks, settings, app } = s
    const dispatcher = new HookDispatcher<Connection>(hooks, { hookTimeout: settings.hookTimeout, queueLimit: settings.hookQueueLimit }, { pause: () => {}, resume: () => {} }, app.log)
    acceptor = new Acceptor(settings, { registry: edge.registry, stats: edge.stats, keepalive: edge.keepalive, dispatcher, hooks, current: new CurrentMessage(), log: app.log, telemetry: new Telemetry(app, app.log, settings.logLevel) })
  })
  after(async () => { await s.close() })
  beforeEach(() => { head = Buffer.alloc(0); replies.length = 0; messages.length = 0; opened.length = 0; closedEvents.length = 0 })

  const client = async (protocols: string[], protocol: string): Promise<WebSocket> => await connect(`${s.url}/direct`, protocols, { headers: { 'X-Protocol': protocol } })
  const gone = async (): Promise<void> => { if (closedEvents.length === 0) await new Promise<void>((resolve) => { onClosed = resolve }) }

  test('answers 101 with the sub-protocol it is given, in that spelling; the connection has it lower-cased, and the peer address given', async () => {
    const before = s.edge.stats.snapshot()
    const ws = await client(['msrp', 'SIP'], 'SIP')
    assert.equal(ws.protocol, 'SIP', 'not the first the client offered: the one accept was given')
    const [info] = s.edge.registry.dump().connections
    assert.deepEqual({ ...info, id: 0, createdAt: 0, lastUsed: 0 }, { ...PEER, id: 0, state: 'OPEN', subProtocol: 'sip', createdAt: 0, lastUsed: 0, lastUsedAgo: 0 })
    const after = s.edge.stats.snapshot()
    assert.deepEqual([after.ws_successful_handshakes - before.ws_successful_handshakes, after.ws_sip_current_connections, after.ws_current_connections], [1, 1, 1])
    assert.deepEqual(opened.map((e) => [e.id, e.subProtocol, e.remoteAddress, e.remotePort, e.socketAddress, e.socketPort, e.localPort, e.request.url]), [[info.id, 'sip', '198.51.100.5', 5062, '10.0.0.9', 40001, 5066, '/direct']])
    ws.close()
    await gone()
  })

  test('lets the upgrade\'s response go: it no longer holds the socket', async () => {
    const ws = await client(['sip'], 'sip')
    assert.equal(replies.length, 1)
    assert.equal(replies[0].raw.socket, null)
    assert.equal(replies[0].sent, true, 'hijacked: Fastify answers nothing more')
    ws.close()
    await gone()
  })

  test('bytes given as the head are the first frame; every frame in or out of the peer counts and makes the connection the most recently used', async () => {
    head = frame(1, 'sent before the 101')
    const older = await client(['sip'], 'sip')
    head = Buffer.alloc(0)
    const newer = await client(['sip'], 'sip')
    const [a, b] = s.edge.registry.dump().connections.map((c) => c.id)
    const mostRecent = (): number => s.edge.registry.dump('used_asc').connections[0].id
    assert.equal(mostRecent(), b)
    const before = s.edge.stats.snapshot().ws_sip_received_frames
    older.ping('p')
    await once(older, 'pong')
    assert.equal(mostRecent(), a, 'a Ping counts as use')
    assert.equal(s.edge.stats.snapshot().ws_sip_received_frames, before + 1)
    newer.send('after the 101')
    older.send('second')
    await until(() => messages.length >= 3, 5000, () => `${messages.length} of 3 messages`, 0)
    assert.deepEqual(messages.map((m) => [m.id, m.data, m.remoteAddress]), [[a, 'sent before the 101', '198.51.100.5'], [b, 'after the 101', '198.51.100.5'], [a, 'second', '198.51.100.5']])
    assert.equal(mostRecent(), a)
    assert.equal(s.edge.stats.snapshot().ws_sip_received_frames, before + 3)
    older.terminate()
    newer.terminate()
    await s.edge.registry.whenEmpty()
  })

  test('when the socket goes: out of the registry, counted for who closed, websocket:closed once with the given address', async () => {
    const ws = await client(['sip'], 'sip')
    const before = s.edge.stats.snapshot()
    const seen = closed(ws)
    ws.close(4002, 'leaving')
    await seen
    await gone()
    await s.edge.registry.whenEmpty()
    assert.deepEqual(closedEvents.map((e) => [e.by, e.code, e.reason, e.remoteAddress, e.socketAddress, e.socketPort]), [['remote', 4002, 'leaving', '198.51.100.5', '10.0.0.9', 40001]])
    const after = s.edge.stats.snapshot()
    assert.deepEqual([after.ws_remote_closed_connections - before.ws_remote_closed_connections, after.ws_current_connections], [1, 0])
  })

  test('after close() it takes no more upgrades: 503, nothing registered or counted', async () => {
    const before = s.edge.stats.snapshot()
    acceptor.close()
    await assert.rejects(client(['sip'], 'sip'), /unexpected response 503/)
    assert.equal(s.edge.registry.size, 0)
    assert.deepEqual(s.edge.stats.snapshot(), before)
    assert.equal(await new Promise<string>((resolve) => {
      const ws = new WebSocket(`${s.url}/edge`, 'sip')
      ws.on('open', () => { resolve('open'); ws.terminate() })
      ws.on('error', (err) => { resolve(err.message) })
    }), 'open', 'the edge\'s own acceptor is another')
  })
})
