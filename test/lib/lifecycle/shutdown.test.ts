import assert from 'node:assert/strict'
import { once } from 'node:events'
import { join } from 'node:path'
import type http from 'node:http'
import net from 'node:net'
import { after, before, describe, test } from 'node:test'
import type { WsClosedEvent } from '../../../lib'
import { HandshakeTimeout } from '../../../lib/handshake/timeout'
import { registerShutdown } from '../../../lib/lifecycle/shutdown'
import { LwscClient } from '../../../lib/lwsc/client'
import { startEdge, type StartedEdge } from '../../helpers/edge'
import { FrameReader, rawWebSocket } from '../../helpers/frames'
import { startKamailio, type Kamailio } from '../../helpers/kamailio'
import { freePort, startPeer } from '../../helpers/lwsc'
import { until, within } from '../../helpers/pool'
import { handshakeLines, rawRequest, readResponse, request } from '../../helpers/raw'
import { connect, handshakeOutcome, loggedApp, startApp, tally, type Started } from '../../helpers/server'
import { reportedSetUp } from '../../helpers/set-up'

// Bounds that hold on a loaded 2-core machine: app.close() must finish within closeTimeout (peers that ignore
// the Close) plus hookTimeout (hooks still running), plus this.
const LATE = 2000
const CLOSE_TIMEOUT = 500
const HOOK_TIMEOUT = 500

/** Times `app.close()`, failing with `what` if it has not resolved within `bound` ms. */
async function timedClose (s: Started, bound: number, what: string): Promise<number> {
  const started = performance.now()
  await within(s.app.close(), bound, () => `app.close() with ${what}`)
  return performance.now() - started
}

interface Reconnector {
  /** Status lines of the answers to handshakes sent after the first connection was closed. */
  answers: string[]
  refused: number
  stop: () => void
}

/**
 * A raw peer as Kamailio's lwsc behaves: it answers no Close frame, drops the TCP connection on one and
 * reconnects at once, up to `limit` times.
 */
async function reconnectingPeer (port: number, limit = 200): Promise<Reconnector> {
  const state: Reconnector = { answers: [], refused: 0, stop: () => { stopped = true } }
  let stopped = false
  let attempts = 0
  const onFrames = (reader: FrameReader): void => {
    void reader.closeFrame(60_000).then(() => {
      reader.socket.destroy()
      reconnect()
    }, () => {})
  }
  const reconnect = (): void => {
    if (stopped || attempts++ >= limit) return
    const socket = net.connect(port, '127.0.0.1')
    socket.on('error', () => {})
    socket.once('connect', () => {
      socket.write(request(handshakeLines(port)))
      readResponse(socket, 10_000).then((res) => {
        state.answers.push(`${res.statusLine} | Retry-After: ${res.headers['retry-after'] ?? '-'} | Connection: ${res.headers.connection ?? '-'}`)
        if (res.status === 101) onFrames(new FrameReader(socket, res.rest))
        else socket.destroy()
      }, () => { socket.destroy() })
    })
    socket.once('error', (err: NodeJS.ErrnoException) => { if (err.code === 'ECONNREFUSED') state.refused++ })
  }
  onFrames(await rawWebSocket(port))
  return state
}

describe('bounded shutdown: app.close() whatever peers and hooks do', () => {
  const figures: string[] = []
  after(() => { if (figures.length > 0) console.log(`# app.close() times:\n#   ${figures.join('\n#   ')}`) })

  /** A peer that reads nothing: shutdown waits closeTimeout for it, so reconnects surely land meanwhile. */
  async function stallingPeer (s: Started): Promise<FrameReader> {
    const raw = await rawWebSocket(s.port)
    raw.socket.pause()
    return raw
  }

  test('a raw peer that ignores Close and reconnects at once: its new handshakes get 503 with Retry-After, close is bounded', async (t) => {
    const s = await startApp({ closeTimeout: CLOSE_TIMEOUT })
    const peer = await reconnectingPeer(s.port)
    const staller = await stallingPeer(s)
    try {
      const ms = await timedClose(s, CLOSE_TIMEOUT + LATE, 'a reconnecting peer')
      figures.push(`reconnecting raw peer: ${ms.toFixed(0)} ms (closeTimeout ${CLOSE_TIMEOUT}, held by a peer that reads nothing)`)
      t.diagnostic(`${figures[figures.length - 1]}; ${peer.answers.length} handshakes during shutdown, ${peer.refused} refused after`)
      assert.ok(peer.answers.length >= 1, 'the peer reconnected while the server was shutting down')
      for (const answer of peer.answers) assert.equal(answer, 'HTTP/1.1 503 Service Unavailable | Retry-After: 5 | Connection: close')
    } finally { peer.stop(); staller.socket.destroy() }
  })

  test('100 ws clients that reconnect at once when closed', async (t) => {
    const s = await startApp({ closeTimeout: CLOSE_TIMEOUT })
    const reconnects = tally(100)
    const clients = await Promise.all(Array.from({ length: 100 }, async () => await connect(s.url)))
    let goingAway = 0
    // One reconnect each, at once: what it gets is the point.
    for (const ws of clients) ws.on('close', (code) => { if (code === 1001) goingAway++; void handshakeOutcome(s.url).then(reconnects.add) })
    const staller = await stallingPeer(s)
    try {
      const ms = await timedClose(s, CLOSE_TIMEOUT + LATE, '100 reconnecting clients')
      await within(reconnects.all, LATE, () => 'the reconnects to settle')
      figures.push(`100 ws clients reconnecting at once: ${ms.toFixed(0)} ms (held by a peer that reads nothing)`)
      t.diagnostic(`${figures[figures.length - 1]}; reconnects got ${JSON.stringify(Object.fromEntries(reconnects.counts))}`)
      assert.equal(goingAway, 100)
      assert.ok((reconnects.counts.get('503 Retry-After 5') ?? 0) >= 1, 'reconnects during shutdown got 503')
      for (const key of reconnects.counts.keys()) assert.match(key, /^(503 Retry-After 5|ECONNREFUSED|ECONNRESET)$/)
    } finally { staller.socket.destroy() }
  })

  test('a request still in a slow xhttp:request hook gets 503 at close', async (t) => {
    let entered: () => void = () => {}
    const inHook = new Promise<void>((resolve) => { entered = resolve })
    const s = await startApp({ closeTimeout: CLOSE_TIMEOUT, hookTimeout: 60_000 }, (app) => {
      app.addWsHook('xhttp:request', async () => { entered(); await new Promise(() => {}) })
    })
    const pending = rawRequest(s.port, request(handshakeLines(s.port)), 10_000)
    await inHook
    const ms = await timedClose(s, CLOSE_TIMEOUT + LATE, 'a hung xhttp:request hook')
    const res = await pending
    assert.equal(res.status, 503)
    assert.equal(res.headers['retry-after'], '5')
    assert.equal(res.headers.connection, 'close')
    figures.push(`xhttp:request hook that never settles: ${ms.toFixed(0)} ms`)
    t.diagnostic(figures[figures.length - 1])
  })

  test('a websocket:closed hook that never settles holds app.close() for hookTimeout at most', async (t) => {
    const s = await startApp({ closeTimeout: CLOSE_TIMEOUT, hookTimeout: HOOK_TIMEOUT }, (app) => {
      app.addWsHook('websocket:closed', async () => { await new Promise(() => {}) })
    })
    await connect(s.url)
    const ms = await timedClose(s, HOOK_TIMEOUT + LATE, 'a hung websocket:closed hook')
    assert.ok(ms >= HOOK_TIMEOUT - 25, `waited ${ms.toFixed(0)} ms for the hook, at least hookTimeout`)
    figures.push(`websocket:closed hook that never settles: ${ms.toFixed(0)} ms (hookTimeout ${HOOK_TIMEOUT})`)
    t.diagnostic(figures[figures.length - 1])
  })

  test('a connection that never sends its request holds app.close() for a short grace only', async (t) => {
    const s = await startApp({ closeTimeout: CLOSE_TIMEOUT, handshakeTimeout: 0 })
    const silent = net.connect(s.port, '127.0.0.1')
    silent.on('error', () => {})
    await once(s.app.server, 'connection')
    const ms = await timedClose(s, CLOSE_TIMEOUT + LATE, 'a silent TCP connection and handshakeTimeout off')
    figures.push(`silent TCP connection, handshakeTimeout 0: ${ms.toFixed(0)} ms`)
    t.diagnostic(figures[figures.length - 1])
    silent.destroy()
  })

  test('a peer that stops reading while the app sends: bounded by closeTimeout', async (t) => {
    const s = await startApp({ closeTimeout: CLOSE_TIMEOUT })
    const raw = await rawWebSocket(s.port)
    raw.socket.pause()
    const id = s.app.wsDump().connections[0].id
    for (let i = 0; i < 200 && s.app.wsSend(id, Buffer.alloc(16 * 1024)); i++);
    const ms = await timedClose(s, CLOSE_TIMEOUT + LATE, 'a peer that reads nothing')
    figures.push(`peer that reads nothing, 3 MiB unsent: ${ms.toFixed(0)} ms`)
    t.diagnostic(figures[figures.length - 1])
    raw.socket.destroy()
  })
})

describe('hook mistakes never crash the process', () => {
  test('a non-string request.wsSubProtocol gets 500, the socket is closed, and the server keeps serving', async () => {
    const rejections: unknown[] = []
    const onRejection = (reason: unknown): void => { rejections.push(reason) }
    process.on('unhandledRejection', onRejection)
    const { fastifyOptions, next } = loggedApp('error')
    const s = await startApp({}, (app) => {
      app.addWsHook('xhttp:request', async (request) => {
        if (request.headers['x-bad'] === 'number') (request as unknown as { wsSubProtocol: unknown }).wsSubProtocol = 42
        if (request.headers['x-bad'] === 'unoffered') request.wsSubProtocol = 'msrp'
      })
    }, fastifyOptions)
    try {
      for (const [bad, mistake] of [['number', /set request\.wsSubProtocol to a number/], ['unoffered', /"msrp", which the client did not offer/]] as const) {
        const res = await rawRequest(s.port, request(handshakeLines(s.port, { 'X-Bad': bad })))
        assert.equal(res.status, 500)
        assert.equal(res.body, 'Internal Server Error')
        await within(new Promise((resolve) => { if (res.socket.destroyed) resolve(null); else res.socket.once('close', resolve) }), 5000, () => 'the refused socket was left open')
        const logged = await within(next(`handshake failed: An xhttp:request hook set request.wsSubProtocol to ${bad === 'number' ? 'a number' : '"msrp"'}`), 5000, () => 'the mistake was not logged')
        assert.match(String(logged.reason), mistake)
      }
      const ws = await connect(s.url)
      assert.equal(ws.protocol, 'sip')
      ws.terminate()
      await new Promise((resolve) => setImmediate(resolve))
      assert.deepEqual(rejections, [])
    } finally {
      process.off('unhandledRejection', onRejection)
      await s.app.close()
    }
  })

  test('an xhttp:request hook past hookTimeout gets its request a 503, and the server keeps serving', async () => {
    const s = await startApp({ hookTimeout: HOOK_TIMEOUT }, (app) => {
      app.addWsHook('xhttp:request', async (request) => { if (request.headers['x-hang'] !== undefined) await new Promise(() => {}) })
    })
    try {
      const started = performance.now()
      const res = await rawRequest(s.port, request(handshakeLines(s.port, { 'X-Hang': '1' })), HOOK_TIMEOUT + LATE)
      const elapsed = performance.now() - started
      assert.equal(res.status, 503)
      assert.ok(elapsed >= HOOK_TIMEOUT - 25 && elapsed < HOOK_TIMEOUT + LATE, `answered after ${elapsed.toFixed(0)} ms`)
      await within(new Promise((resolve) => { if (res.socket.destroyed) resolve(null); else res.socket.once('close', resolve) }), 5000, () => 'the socket was left open')
      const ws = await connect(s.url)
      ws.terminate()
    } finally { await s.app.close() }
  })
})

describe('closed hooks settle before lwsc closes', () => {
  test('async websocket:closed hooks that notify through app.lwsc at shutdown all get through', async () => {
    const received: string[] = []
    const sink = await startPeer({ onMessage: (_ws, data) => { received.push(data.toString()) } })
    const s = await startApp({ closeTimeout: CLOSE_TIMEOUT, hookTimeout: 5000 }, (app) => {
      app.addWsHook('websocket:closed', async (e: WsClosedEvent) => {
        // Slow on purpose: the hook finishes well after every connection has gone.
        await new Promise((resolve) => setTimeout(resolve, 200))
        await app.lwsc.notify(sink.url, JSON.stringify({ id: e.id, by: e.by, code: e.code }))
      })
    })
    try {
      await Promise.all(Array.from({ length: 10 }, async () => await connect(s.url)))
      const ids = s.app.wsDump().connections.map((c) => c.id)
      await within(s.app.close(), 5000 + LATE, () => 'app.close()')
      // notify resolves once written: the sink may still be reading the last ones.
      await until(() => received.length >= ids.length, 5000, () => `${received.length} of ${ids.length} notifications`, 0)
      const events = received.map((r) => JSON.parse(r) as { id: number, by: string, code: number })
      assert.deepEqual(events.map((e) => e.id).sort((a, b) => a - b), ids)
      for (const e of events) assert.deepEqual([e.by, e.code], ['local', 1001])
    } finally { await sink.close() }
  })
})

describe("Kamailio's lwsc connected to us at app.close()", () => {
  let kamailio: Kamailio | undefined
  before(reportedSetUp(async () => { kamailio = await startKamailio(join(__dirname, '..', '..', 'fixtures', 'kamailio-ws.cfg'), await freePort()) }))
  after(async () => { await kamailio?.stop() })

  test('app.close() resolves within closeTimeout whatever Kamailio does with our Close', async (t) => {
    assert.ok(kamailio)
    const s = await startApp({ path: '/', subProtocols: ['kmsg'], closeTimeout: CLOSE_TIMEOUT }, (app) => {
      app.addWsHook('websocket:message', (m) => { app.wsSend(m.id, 'reply:' + String(m.data)) })
    })
    const res = await fetch(`http://127.0.0.1:${kamailio.port}/lwsc?proto=kmsg&url=ws://127.0.0.1:${s.port}/`, { signal: AbortSignal.timeout(8000) })
    assert.equal(await res.text(), 'reply:hello', kamailio.log())
    assert.equal(s.app.wsDump().wscounter, 1, "Kamailio's lwsc keeps its connection open")
    let reconnects = 0
    s.app.server.on('connection', () => { reconnects++ })
    const ms = await timedClose(s, CLOSE_TIMEOUT + LATE, "Kamailio's lwsc connected")
    t.diagnostic(`app.close() with Kamailio's lwsc connected: ${ms.toFixed(0)} ms; Kamailio reconnected ${reconnects} times during shutdown`)
  })
})

describe('registerShutdown on an edge of its own', () => {
  const SHORT_CLOSE = 400

  /** Shuts the edge down as a user does, with app.close(), timed and bounded. */
  async function appClose (s: StartedEdge): Promise<void> {
    await within(s.app.close(), SHORT_CLOSE + LATE, () => 'app.close()')
    await s.cluster.stop()
  }

  test('app.close(): stray upgrades get 503 and are counted; a silent connection gets the grace; lwsc closes after the closed hooks; nothing is left listening', async () => {
    const order: string[] = []
    const lwsc = new LwscClient()
    let handshakeTimeout: HandshakeTimeout | null = null
    const s = await startEdge({ closeTimeout: SHORT_CLOSE, handshakeTimeout: 0 }, (app, hooks, edge, settings) => {
      handshakeTimeout = new HandshakeTimeout(app.server, settings.handshakeTimeout, app.log, () => { edge.stats.handshakeTimedOut() })
      handshakeTimeout.start()
      hooks.add(app, 'websocket:closed', async () => {
        for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
        order.push('closed hook done')
      })
      registerShutdown(app, { settings, lifecycle: edge.lifecycle, stats: edge.stats, upgrades: edge.upgrades, handshakeTimeout, lwsc: { close: async () => { order.push('lwsc close'); await lwsc.close() } } })
    })
    // Holds shutdown for closeTimeout: it reads nothing, so it never answers the Close.
    const staller = await rawWebSocket(s.port)
    staller.socket.pause()
    const silent = net.connect(s.port, '127.0.0.1')
    silent.on('error', () => {})
    let heard = ''
    silent.on('data', (chunk: Buffer) => { heard += chunk.toString() })
    const silentClosed = once(silent, 'close')
    await once(s.app.server, 'connection')
    const failedBefore = s.edge.stats.snapshot().ws_failed_handshakes

    const closing = appClose(s)
    await until(() => s.edge.lifecycle.leavingRefusal() !== null, 2000, () => 'shutdown to begin', 0)
    const stray = await rawRequest(s.port, request(handshakeLines(s.port)))
    stray.socket.destroy()
    assert.deepEqual([stray.status, stray.headers['retry-after'], stray.headers.connection], [503, '5', 'close'])
    assert.equal(s.edge.stats.snapshot().ws_failed_handshakes, failedBefore + 1, 'counted as a failed handshake')
    await closing
    await within(silentClosed, LATE, () => 'the silent connection to be dropped')
    assert.match(heard, /^HTTP\/1\.1 408 Request Timeout\r\n/, 'dropped by the handshake timeout\'s grace, not by the server\'s close')
    assert.deepEqual(order, ['closed hook done', 'lwsc close'])
    assert.equal(s.app.server.listenerCount('upgrade'), 0, 'no listener of ours, nor the handshake timeout\'s, is left')
    staller.socket.destroy()
  })

  test('an upgrade listener of the app\'s own is left to answer stray upgrades', async () => {
    const answered: string[] = []
    const s = await startEdge({ closeTimeout: SHORT_CLOSE }, (app, _hooks, edge, settings) => {
      // The app's own upgrades, on a path of its own (a socket.io server beside the edge, say).
      app.server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
        if (req.url !== '/own') return
        answered.push(req.url)
        socket.end('HTTP/1.1 418 I\'m a teapot\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
      })
      registerShutdown(app, { settings, lifecycle: edge.lifecycle, stats: edge.stats, upgrades: edge.upgrades, handshakeTimeout: null, lwsc: { close: async () => {} } })
    })
    const staller = await rawWebSocket(s.port)
    staller.socket.pause()
    const failedBefore = s.edge.stats.snapshot().ws_failed_handshakes
    const closing = appClose(s)
    await until(() => s.edge.lifecycle.leavingRefusal() !== null, 2000, () => 'shutdown to begin', 0)
    const own = await rawRequest(s.port, request(handshakeLines(s.port, {}, 'GET /own HTTP/1.1')))
    own.socket.destroy()
    assert.equal(own.status, 418)
    assert.deepEqual(answered, ['/own'])
    assert.equal(s.edge.stats.snapshot().ws_failed_handshakes, failedBefore, 'not refused, nor counted, by us')
    await closing
    staller.socket.destroy()
  })
})
