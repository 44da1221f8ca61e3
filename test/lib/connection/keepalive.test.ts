import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import type { WsClosedEvent } from '../../../lib'
import type { Connection } from '../../../lib/connection/connection'
import { Keepalive } from '../../../lib/connection/keepalive'
import { entry as synthetic } from '../../helpers/connections'
import { frame, rawWebSocket } from '../../helpers/frames'
import { within } from '../../helpers/pool'
import { connect, startApp } from '../../helpers/server'

// The smallest keepaliveTimeout the options take (anything less reads as seconds by mistake), swept often.
const TIMEOUT = 1000
const INTERVAL = 100
const FAST = { keepaliveTimeout: TIMEOUT, keepaliveInterval: INTERVAL }
// Timers never fire early; on a loaded 2-core machine they may fire this much late.
const LATE = 1500

/** Resolves with the first closed event; the hook is added before listen. */
function firstClosed (): { hook: (e: WsClosedEvent) => void, event: Promise<WsClosedEvent> } {
  let hook: (e: WsClosedEvent) => void = () => {}
  const event = new Promise<WsClosedEvent>((resolve) => { hook = resolve })
  return { hook: (e) => { hook(e) }, event }
}

describe('keepalive over real sockets', () => {
  test('mechanism 1: a silent connection gets a Ping carrying pingApplicationData after keepaliveTimeout, and again', async () => {
    const s = await startApp({ ...FAST, pingApplicationData: 'edge-1' })
    try {
      const ws = await connect(s.url)
      const started = performance.now()
      const [data] = await within(once(ws, 'ping'), TIMEOUT + LATE, () => 'first Ping') as [Buffer]
      assert.equal(data.toString(), 'edge-1')
      assert.ok(performance.now() - started >= TIMEOUT - 50, 'not before the timeout')
      // ws answers the Ping, which is the peer speaking: the next Ping comes a timeout later.
      const [again] = await within(once(ws, 'ping'), TIMEOUT + LATE, () => 'second Ping') as [Buffer]
      assert.equal(again.toString(), 'edge-1')
      assert.ok(s.app.wsStats().ws_transmitted_frames >= 2)
      ws.terminate()
    } finally { await s.app.close() }
  })

  test('mechanism 2: an unsolicited Pong instead, and silence is never taken for death', async () => {
    const s = await startApp({ ...FAST, keepaliveMechanism: 2, pingApplicationData: 'pong-data' })
    try {
      const raw = await rawWebSocket(s.port)
      for (let i = 0; i < 3; i++) {
        const f = await raw.next(TIMEOUT + LATE)
        assert.deepEqual([f?.opcode, f?.payload.toString()], [10, 'pong-data'])
      }
      assert.equal(s.app.wsDump().wscounter, 1, 'three timeouts of silence, still open')
      raw.socket.destroy()
    } finally { await s.app.close() }
  })

  test('a peer that keeps sending is not probed', async () => {
    const s = await startApp(FAST)
    try {
      const busy = await connect(s.url)
      const idle = await connect(s.url)
      let busyPinged = 0
      busy.on('ping', () => { busyPinged++ })
      const idlePing = once(idle, 'ping')
      const timer = setInterval(() => { busy.send('x') }, 100)
      await within(idlePing, TIMEOUT + LATE, () => 'the idle connection was not pinged')
      clearInterval(timer)
      assert.equal(busyPinged, 0)
      busy.terminate(); idle.terminate()
    } finally { await s.app.close() }
  })

  test('a vanished peer the app keeps sending to is still probed and closed by keepalive, and wsSend turns false', async () => {
    // A registrar sends NOTIFY/OPTIONS to its clients: our own traffic must not keep a dead peer alive.
    const closed = firstClosed()
    const CLOSE_TIMEOUT = 200
    const s = await startApp({ ...FAST, closeTimeout: CLOSE_TIMEOUT }, (app) => { app.addWsHook('websocket:closed', closed.hook) })
    try {
      const raw = await rawWebSocket(s.port)
      // Paused: reads nothing, answers nothing, like a phone whose network went away.
      raw.socket.pause()
      const id = s.app.wsDump().connections[0].id
      const started = performance.now()
      let sent = 0
      const sender = setInterval(() => { if (s.app.wsSend(id, 'NOTIFY sip:alice SIP/2.0\r\n\r\n')) sent++ }, 200)
      const event = await within(closed.event, 3 * TIMEOUT + CLOSE_TIMEOUT + LATE, () => `still open ${Math.round(performance.now() - started)} ms after the peer went silent`)
      const after = performance.now() - started
      clearInterval(sender)
      assert.deepEqual([event.id, event.by, event.code, event.reason], [id, 'keepalive', 1001, 'Keepalive timeout'])
      // A Ping after one timeout of silence, the close after another, the socket after closeTimeout.
      assert.ok(after >= 2 * TIMEOUT, `closed after ${Math.round(after)} ms: not before two timeouts`)
      assert.ok(sent >= 5, `the app kept sending all along (${sent} sends)`)
      assert.equal(s.app.wsSend(id, 'late'), false)
      raw.socket.destroy()
    } finally { await s.app.close() }
  })

  test('our sends still count as use for wsDump: the connection we write to lists first in used_asc', async () => {
    const s = await startApp(FAST)
    try {
      const a = await connect(s.url)
      const b = await connect(s.url)
      const [idA, idB] = s.app.wsDump('id_hash').connections.map((c) => c.id)
      const got = once(a, 'message')
      assert.equal(s.app.wsSend(idA, 'hello'), true)
      await got
      assert.deepEqual(s.app.wsDump('used_asc').connections.map((c) => c.id), [idA, idB])
      const gotB = once(b, 'message')
      s.app.wsSend(idB, 'hello')
      await gotB
      assert.deepEqual(s.app.wsDump('used_asc').connections.map((c) => c.id), [idB, idA])
      a.terminate(); b.terminate()
    } finally { await s.app.close() }
  })

  test('a peer that answers no Ping is closed with by "keepalive"', async () => {
    const closed = firstClosed()
    const s = await startApp({ ...FAST, closeTimeout: 100 }, (app) => { app.addWsHook('websocket:closed', closed.hook) })
    try {
      const raw = await rawWebSocket(s.port)
      const ping = await raw.next(TIMEOUT + LATE)
      assert.equal(ping?.opcode, 9, 'got a Ping and does not answer it')
      assert.deepEqual(await raw.closeFrame(TIMEOUT + LATE), { code: 1001, reason: 'Keepalive timeout' })
      await raw.ended
      const event = await closed.event
      assert.deepEqual([event.by, event.code], ['keepalive', 1001])
      assert.equal(s.app.wsStats().ws_local_closed_connections, 1)
    } finally { await s.app.close() }
  })

  test('a peer that answers its Pings stays', async () => {
    const s = await startApp(FAST)
    try {
      const raw = await rawWebSocket(s.port)
      for (let i = 0; i < 3; i++) {
        const f = await raw.next(TIMEOUT + LATE)
        assert.equal(f?.opcode, 9)
        raw.write(frame(10, f?.payload ?? Buffer.alloc(0)))
      }
      assert.equal(s.app.wsDump().wscounter, 1)
      raw.socket.destroy()
    } finally { await s.app.close() }
  })

  test('keepaliveCloseDead: false keeps a silent peer; mechanism 0 sends nothing', async () => {
    const s = await startApp({ ...FAST, keepaliveCloseDead: false })
    try {
      const raw = await rawWebSocket(s.port)
      for (let i = 0; i < 3; i++) assert.equal((await raw.next(TIMEOUT + LATE))?.opcode, 9)
      assert.equal(s.app.wsDump().wscounter, 1)
      raw.socket.destroy()
    } finally { await s.app.close() }
    const none = await startApp({ ...FAST, keepaliveMechanism: 0 })
    try {
      const raw = await rawWebSocket(none.port)
      // Two timeouts and some sweeps: had anything been due, it would have been sent.
      await assert.rejects(raw.next(2 * TIMEOUT + 3 * INTERVAL), /no frame within/)
      raw.socket.destroy()
    } finally { await none.app.close() }
  })
})

describe('sweep cost (keepalive queue only, synthetic entries)', () => {
  const noLog = { debug () {} } as never
  const entry = (i: number): Connection => synthetic(i + 1)
  const settings = { mechanism: 1 as const, timeoutMs: 180_000, intervalMs: 1000, closeDead: true, verbose: false }

  test('visits only due connections: 1,000,000 recently heard entries cost no visit, like 1,000', () => {
    for (const n of [1_000, 1_000_000]) {
      let probed = 0
      const k = new Keepalive(settings, { probe: () => { probed++ }, expire: () => {} }, noLog)
      for (let i = 0; i < n; i++) k.heard(entry(i), 1_000_000)
      assert.deepEqual(k.sweep(1_000_000 + 1000), { visited: 0, probed: 0, expired: 0 }, `n=${n}`)
      assert.equal(probed, 0)
    }
  })

  test('due connections are probed once each per timeout, then expired if still silent; hearing from one saves it', () => {
    const probed: number[] = []
    const expired: number[] = []
    const k = new Keepalive(settings, { probe: (c) => { probed.push(c.id) }, expire: (c) => { expired.push(c.id) } }, noLog)
    const conns = Array.from({ length: 10_000 }, (_, i) => entry(i))
    // 1,000 silent since 0, 9,000 heard at 100,000.
    conns.forEach((c, i) => { k.heard(c, i < 1000 ? 0 : 100_000) })
    assert.deepEqual(k.sweep(180_000), { visited: 1000, probed: 1000, expired: 0 })
    assert.deepEqual(probed, conns.slice(0, 1000).map((c) => c.id))
    assert.deepEqual(k.sweep(180_001), { visited: 0, probed: 0, expired: 0 }, 'a probe puts it a timeout further')
    // The busy ones keep talking, and one of the probed answers; the other 999 stay silent.
    for (const c of conns.slice(1000)) k.heard(c, 200_000)
    k.heard(conns[0], 200_000)
    const second = k.sweep(360_000)
    assert.deepEqual(second, { visited: 999, probed: 0, expired: 999 })
    assert.deepEqual(expired, conns.slice(1, 1000).map((c) => c.id))
    // The busy ones come due in their turn, with the one that answered.
    assert.deepEqual(k.sweep(380_000), { visited: 9001, probed: 9001, expired: 0 })
  })

  test('probes do not count as hearing from the peer, however many the app sends', () => {
    const expired: number[] = []
    const k = new Keepalive({ ...settings, timeoutMs: 100 }, { probe: () => {}, expire: (c) => { expired.push(c.id) } }, noLog)
    const conn = entry(0)
    k.heard(conn, 0)
    assert.equal(k.sweep(100).probed, 1)
    assert.equal(k.sweep(150).visited, 0)
    assert.deepEqual(k.sweep(200), { visited: 1, probed: 0, expired: 1 })
    assert.deepEqual(expired, [conn.id])
    assert.equal(k.sweep(1000).visited, 0, 'an expired connection leaves the queue')
  })

  test('a busy peer moves in the queue once per sweep interval, not per frame, and is probed after a full timeout of silence', () => {
    let probes = 0
    const k = new Keepalive({ ...settings, timeoutMs: 10_000, intervalMs: 1000 }, { probe: () => { probes++ }, expire: () => { assert.fail('expired') } }, noLog)
    const conn = entry(0)
    k.heard(conn, 0)
    // A frame every 10 ms for 5 s: 500 frames, and the queue place moves about once a second.
    let moves = 0
    for (let t = 10; t <= 5000; t += 10) {
      const before = conn.keepaliveDue
      k.heard(conn, t)
      if (conn.keepaliveDue !== before) moves++
    }
    assert.ok(moves >= 4 && moves <= 6, `${moves} moves for 500 frames over 5 s`)
    // Silent from 5,000: no sweep before 15,000 probes it, or counts it as visited.
    for (let t = 1000; t < 15_000; t += 1000) assert.deepEqual(k.sweep(t), { visited: 0, probed: 0, expired: 0 }, `sweep at ${t}`)
    assert.deepEqual(k.sweep(15_000), { visited: 1, probed: 1, expired: 0 })
    assert.equal(probes, 1)
  })

  test('mechanism 2 and keepaliveCloseDead: false probe again each timeout and never expire', () => {
    for (const variant of [{ mechanism: 2 as const }, { closeDead: false }]) {
      let probes = 0
      const k = new Keepalive({ ...settings, ...variant, timeoutMs: 100 }, { probe: () => { probes++ }, expire: () => { assert.fail('expired') } }, noLog)
      k.heard(entry(0), 0)
      for (let t = 100; t <= 1000; t += 100) k.sweep(t)
      assert.equal(probes, 10, JSON.stringify(variant))
    }
  })
})
