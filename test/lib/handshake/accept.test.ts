import assert from 'node:assert/strict'
import { after, before, beforeEach, describe, test } from 'node:test'
import type { WsClosedEvent, WsMessage } from '../../../lib'
import { closePayload, frame, rawWebSocket, type FrameReader } from '../../helpers/frames'
import { connect, startApp, type Started } from '../../helpers/server'

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
