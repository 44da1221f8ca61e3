import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import type { WsClosedEvent } from '../lib'
import { Keepalive } from '../lib/keepalive'
import { Connection, Registry } from '../lib/registry'
import { frame, rawWebSocket } from './helpers/frames'
import { connect, startApp } from './helpers/server'

// Short timeouts keep these tests fast; every wait is on an event.
const FAST = { keepaliveTimeout: 0.15, keepaliveInterval: 0.05 }

describe('keepalive over real sockets', () => {
  test('mechanism 1: an idle connection gets a Ping carrying pingApplicationData, and again while idle', async () => {
    const s = await startApp({ ...FAST, pingApplicationData: 'edge-1' })
    try {
      const ws = await connect(s.url)
      const started = Date.now()
      const [data] = await once(ws, 'ping') as [Buffer]
      assert.equal(data.toString(), 'edge-1')
      assert.ok(Date.now() - started >= 100, 'not before the timeout')
      const [again] = await once(ws, 'ping') as [Buffer]
      assert.equal(again.toString(), 'edge-1')
      assert.ok(s.app.wsStats().ws_transmitted_frames >= 2)
      ws.terminate()
    } finally { await s.app.close() }
  })

  test('mechanism 2: an unsolicited Pong instead', async () => {
    const s = await startApp({ ...FAST, keepaliveMechanism: 2, pingApplicationData: 'pong-data' })
    try {
      const ws = await connect(s.url)
      const [data] = await once(ws, 'pong') as [Buffer]
      assert.equal(data.toString(), 'pong-data')
      ws.terminate()
    } finally { await s.app.close() }
  })

  test('a busy connection is not probed', async () => {
    const s = await startApp({ keepaliveTimeout: 0.3, keepaliveInterval: 0.05 }, (app) => {
      app.addWsHook('websocket:message', (m) => { app.wsSend(m.id, 'ok') })
    })
    try {
      const busy = await connect(s.url)
      const idle = await connect(s.url)
      let busyPinged = 0
      busy.on('ping', () => { busyPinged++ })
      const idlePing = once(idle, 'ping')
      const timer = setInterval(() => { busy.send('x') }, 50)
      await idlePing
      clearInterval(timer)
      assert.equal(busyPinged, 0)
      busy.terminate(); idle.terminate()
    } finally { await s.app.close() }
  })

  test('a peer that answers no Ping is closed with by "keepalive"', async () => {
    const closedEvents: WsClosedEvent[] = []
    let onClosed: () => void = () => {}
    const closedOnce = new Promise<void>((resolve) => { onClosed = resolve })
    const s = await startApp({ ...FAST, closeTimeout: 100 }, (app) => { app.addWsHook('websocket:closed', (e) => { closedEvents.push(e); onClosed() }) })
    try {
      const raw = await rawWebSocket(s.port)
      const ping = await raw.next()
      assert.equal(ping?.opcode, 9, 'got a Ping and does not answer it')
      assert.deepEqual(await raw.closeFrame(), { code: 1001, reason: 'Keepalive timeout' })
      await raw.ended
      await closedOnce
      assert.equal(closedEvents.length, 1)
      assert.deepEqual([closedEvents[0].by, closedEvents[0].code], ['keepalive', 1001])
      assert.equal(s.app.wsStats().ws_local_closed_connections, 1)
    } finally { await s.app.close() }
  })

  test('a peer that answers its Pings stays', async () => {
    const s = await startApp(FAST)
    try {
      const raw = await rawWebSocket(s.port)
      for (let i = 0; i < 4; i++) {
        const f = await raw.next()
        assert.equal(f?.opcode, 9)
        raw.write(frame(10, f?.payload ?? Buffer.alloc(0)))
      }
      assert.equal(s.app.wsDump().wscounter, 1)
      raw.socket.destroy()
    } finally { await s.app.close() }
  })

  test('keepaliveCloseDead: false keeps a silent peer, mechanism 0 sends nothing', async () => {
    const s = await startApp({ ...FAST, keepaliveCloseDead: false })
    try {
      const raw = await rawWebSocket(s.port)
      for (let i = 0; i < 4; i++) assert.equal((await raw.next())?.opcode, 9)
      assert.equal(s.app.wsDump().wscounter, 1)
      raw.socket.destroy()
    } finally { await s.app.close() }
    const none = await startApp({ ...FAST, keepaliveMechanism: 0 })
    try {
      const raw = await rawWebSocket(none.port)
      await assert.rejects(raw.next(600), /no frame within/)
      raw.socket.destroy()
    } finally { await none.app.close() }
  })
})

describe('sweep cost (registry only, synthetic entries)', () => {
  function fill (n: number, now: number): Registry {
    const r = new Registry()
    for (let i = 0; i < n; i++) {
      r.add(new Connection(r.nextId(), { remoteAddress: '10.0.0.1', remotePort: i & 0xffff, localAddress: '127.0.0.1', localPort: 80, transport: 'ws' }, 'sip', null, now))
    }
    return r
  }
  const noLog = { debug () {} } as never

  test('visits only due connections: 1,000,000 busy entries cost one visit, like 1,000', () => {
    const now = 1_000_000
    for (const n of [1_000, 1_000_000]) {
      const r = fill(n, now)
      let probed = 0
      const k = new Keepalive(r, { mechanism: 1, timeoutMs: 180_000, intervalMs: 1000, closeDead: true, verbose: false }, { probe: (c, t) => { probed++; r.touch(c, t) }, expire: () => {} }, noLog)
      const result = k.sweep(now + 1000)
      assert.deepEqual(result, { visited: 0, probed: 0, expired: 0 }, `n=${n}`)
      assert.equal(probed, 0)
    }
  })

  test('due connections are probed once each and moved behind the busy ones', () => {
    const r = fill(10_000, 0)
    // The newest 9,000 were used recently; 1,000 are idle.
    let i = 0
    for (const c of [...r.values()]) if (i++ >= 1000) r.touch(c, 200_000)
    const probedIds: number[] = []
    const k = new Keepalive(r, { mechanism: 1, timeoutMs: 180_000, intervalMs: 1000, closeDead: true, verbose: false }, { probe: (c, t) => { probedIds.push(c.id); r.touch(c, t) }, expire: () => {} }, noLog)
    const first = k.sweep(200_001)
    assert.deepEqual(first, { visited: 1000, probed: 1000, expired: 0 })
    assert.deepEqual(probedIds, Array.from({ length: 1000 }, (_, j) => j + 1))
    assert.deepEqual(k.sweep(200_002), { visited: 0, probed: 0, expired: 0 }, 'probing marked them used')
  })

  test('an unanswered Ping expires after another timeout', () => {
    const r = fill(3, 0)
    const expired: number[] = []
    const k = new Keepalive(r, { mechanism: 1, timeoutMs: 100, intervalMs: 10, closeDead: true, verbose: false }, {
      probe: (c, t) => { if (c.pingSentAt === 0) c.pingSentAt = t; r.touch(c, t) },
      expire: (c) => { expired.push(c.id); r.remove(c) }
    }, noLog)
    assert.equal(k.sweep(100).probed, 3)
    assert.equal(k.sweep(150).visited, 0)
    assert.deepEqual(k.sweep(200), { visited: 3, probed: 0, expired: 3 })
    assert.deepEqual(expired, [1, 2, 3])
  })
})
