import assert from 'node:assert/strict'
import { once } from 'node:events'
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import tls from 'node:tls'
import { describe, test } from 'node:test'
import Fastify from 'fastify'
import sipWs, { type WsClosedEvent } from '../../lib'
import { rawWebSocket } from '../helpers/frames'
import { selfSignedCert } from '../helpers/lwsc'
import { MiB, mib, settledMemory } from '../helpers/memory'
import { within } from '../helpers/pool'
import { handshakeLines, readResponse, request } from '../helpers/raw'
import { connect, nextMessage, startApp } from '../helpers/server'

// libuv starts a timer from the event loop's cached clock, which can lag the real one by a few ms.
const CLOCK_SLACK = 25
// How late a timer may fire on a loaded 2-core machine and still count as on time.
const LATE = 1000

interface Slowloris {
  /** Resolves when the server ends the connection: how long after connecting, and what it answered. */
  ended: Promise<{ elapsed: number, answer: string }>
  socket: net.Socket
  sent: () => number
  stop: () => void
}

/** Sends `bytes` one byte every `intervalMs`, from the moment the TCP connection is up. */
async function slowloris (port: number, bytes: Buffer, intervalMs: number): Promise<Slowloris> {
  const started = performance.now()
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  let answer = ''
  socket.on('data', (chunk: Buffer) => { answer += chunk.toString('latin1') })
  await once(socket, 'connect')
  let sent = 0
  const sendOne = (): void => { if (sent < bytes.length && !socket.destroyed) socket.write(bytes.subarray(sent, ++sent)) }
  sendOne()
  const timer = setInterval(sendOne, intervalMs)
  const stop = (): void => { clearInterval(timer); socket.destroy() }
  // Not events.once: it would reject on the reset that ends some of these connections.
  const ended = new Promise((resolve) => socket.once('close', resolve)).then(() => {
    clearInterval(timer)
    return { elapsed: performance.now() - started, answer }
  })
  return { ended, socket, sent: () => sent, stop }
}

function handshakeBytes (port: number): Buffer {
  return Buffer.from(request(handshakeLines(port)))
}

describe('handshakeTimeout', () => {
  test('slowloris clients sending a byte a second are cut off after the timeout; nothing else is', async (t) => {
    // Between two bytes, so the cut never races a byte in flight (which the closed socket would answer with
    // a reset that can overtake the 408).
    const TIMEOUT = 2500
    const ATTACKERS = 20
    const s = await startApp({ handshakeTimeout: TIMEOUT }, (app) => {
      app.get('/ping', async () => 'pong')
      app.addWsHook('websocket:message', (m) => { app.wsSend(m.id, m.data) })
    })
    const unlimited = await startApp({ handshakeTimeout: 0 })
    const attackers: Slowloris[] = []
    let keptAlive: net.Socket | undefined
    let ws: Awaited<ReturnType<typeof connect>> | undefined
    try {
      // Connections the timer must leave alone: a WebSocket and a kept-alive HTTP socket, both idle for
      // longer than the timeout while the attack runs.
      ws = await connect(s.url)
      keptAlive = net.connect(s.port, '127.0.0.1')
      await once(keptAlive, 'connect')
      const idleSince = performance.now()
      keptAlive.write('GET /ping HTTP/1.1\r\nHost: x\r\n\r\n')
      assert.equal((await readResponse(keptAlive)).status, 200)

      for (let i = 0; i < ATTACKERS; i++) attackers.push(await slowloris(s.port, handshakeBytes(s.port), 1000))
      const spared = await slowloris(unlimited.port, handshakeBytes(unlimited.port), 1000)
      attackers.push(spared)
      // A normal client is served while the attack is on.
      const during = await connect(s.url)
      during.send('served')
      assert.equal(String((await nextMessage(during)).data), 'served')
      during.terminate()

      const results = await within(Promise.all(attackers.slice(0, ATTACKERS).map(async (a) => await a.ended)), TIMEOUT + 2 * LATE, () => 'slowloris clients still connected')
      for (const { elapsed, answer } of results) {
        assert.ok(elapsed >= TIMEOUT - CLOCK_SLACK && elapsed < TIMEOUT + LATE, `cut after ${elapsed.toFixed(0)} ms, expected ${TIMEOUT}-${TIMEOUT + LATE}`)
        assert.match(answer, /^HTTP\/1\.1 408 Request Timeout\r\n/)
      }
      assert.ok(attackers.slice(0, ATTACKERS).every((a) => a.sent() >= 2 && a.sent() <= 3), 'a byte a second got through until the cut')
      assert.equal(s.app.wsStats().ws_handshake_timeouts, ATTACKERS)
      const cuts = results.map((r) => r.elapsed)
      t.diagnostic(`${ATTACKERS} slowloris clients cut after ${Math.min(...cuts).toFixed(0)}-${Math.max(...cuts).toFixed(0)} ms (timeout ${TIMEOUT} ms)`)

      // The idle connections outlived the timeout untouched.
      assert.ok(performance.now() - idleSince > TIMEOUT, 'the idle connections were idle past the timeout')
      keptAlive.write('GET /ping HTTP/1.1\r\nHost: x\r\n\r\n')
      assert.equal((await readResponse(keptAlive)).status, 200, 'a kept-alive socket serves its next request')
      ws.send('still open')
      assert.equal(String((await nextMessage(ws)).data), 'still open')
      // handshakeTimeout 0: the same attack on the other server is still connected, and still sending.
      assert.equal(spared.socket.destroyed, false)
      assert.equal(unlimited.app.wsStats().ws_handshake_timeouts, 0)
    } finally {
      for (const a of attackers) a.stop()
      keptAlive?.destroy()
      ws?.terminate()
      await s.app.close()
      await unlimited.app.close()
    }
  })

  test('over TLS: counted from the end of the TLS handshake; wss still works', async (t) => {
    const TIMEOUT = 1000
    const { key, cert } = await selfSignedCert()
    const app = Fastify({ https: { key, cert } })
    await app.register(sipWs, { handshakeTimeout: TIMEOUT })
    await app.listen({ host: '127.0.0.1', port: 0 })
    const port = (app.server.address() as net.AddressInfo).port
    try {
      const socket = tls.connect({ host: '127.0.0.1', port, ca: cert })
      socket.on('error', () => {})
      await once(socket, 'secureConnect')
      const started = performance.now()
      let answer = ''
      socket.on('data', (chunk: Buffer) => { answer += chunk.toString() })
      await within(new Promise((resolve) => socket.once('close', resolve)), TIMEOUT + 2 * LATE, () => 'silent TLS client still connected')
      const elapsed = performance.now() - started
      assert.ok(elapsed >= TIMEOUT - CLOCK_SLACK && elapsed < TIMEOUT + LATE, `cut after ${elapsed.toFixed(0)} ms`)
      assert.match(answer, /^HTTP\/1\.1 408 /)
      assert.equal(app.wsStats().ws_handshake_timeouts, 1)
      t.diagnostic(`silent TLS client cut ${elapsed.toFixed(0)} ms after its TLS handshake (timeout ${TIMEOUT} ms)`)
      const ws = await connect(`wss://127.0.0.1:${port}`, 'sip', { ca: cert })
      assert.equal(ws.protocol, 'sip')
      ws.terminate()
    } finally {
      await app.close()
    }
  })

  test('app.close() drops connections still without a request head after a short grace, without waiting for the timer', async () => {
    const s = await startApp({ handshakeTimeout: 60_000 })
    const accepted = once(s.app.server, 'connection')
    const attacker = await slowloris(s.port, handshakeBytes(s.port), 1000)
    try {
      await accepted
      const started = performance.now()
      await s.app.close()
      // Shutdown gives a connection 500 ms to finish its request head (a real client's is already in flight).
      const { answer } = await within(attacker.ended, 500 + LATE, () => 'the slow connection outlived app.close()')
      assert.ok(performance.now() - started < 500 + LATE, 'close did not wait for the 60 s timer')
      assert.ok(answer === '' || answer.startsWith('HTTP/1.1 408 Request Timeout\r\n'), `at most a 408, no request was ever read; got ${JSON.stringify(answer)}`)
    } finally {
      attacker.stop()
    }
  })
})

describe('maxBufferedAmount', () => {
  test('a peer that stops reading is closed with 1008 once the send buffer passes the limit; memory stays bounded', async (t) => {
    const LIMIT = MiB
    const CHUNK = 64 * 1024
    // The kernel's socket buffers (a few MiB on loopback) fill before anything queues in Node; this is far
    // beyond them and the limit together.
    const MAX_SENDS = 512
    const closedEvents: WsClosedEvent[] = []
    let onClosed: () => void = () => {}
    const gone = new Promise<void>((resolve) => { onClosed = resolve })
    const s = await startApp({ maxBufferedAmount: LIMIT, closeTimeout: 500 }, (app) => {
      app.addWsHook('websocket:closed', (e) => { closedEvents.push(e); onClosed() })
    })
    try {
      const reader = await rawWebSocket(s.port)
      reader.socket.pause()
      const id = s.app.wsDump().connections[0].id
      const before = settledMemory()
      let accepted = 0
      // A fresh Buffer per send: ws queues it as it is, so what waits in the send queue shows as memory.
      while (accepted < MAX_SENDS && s.app.wsSend(id, Buffer.alloc(CHUNK, accepted & 0xff))) {
        accepted++
        // Let the socket flush what the kernel takes before the next send.
        if (accepted % 8 === 0) await new Promise((resolve) => setImmediate(resolve))
      }
      const refusedAt = performance.now()
      // The queue is at its longest now: until closeTimeout destroys the socket, nothing leaves it.
      const held = settledMemory().external - before.external
      assert.ok(accepted < MAX_SENDS, `wsSend still accepted after ${mib(accepted * CHUNK)} to a peer that reads nothing`)
      assert.ok(held < LIMIT + 2 * CHUNK + MiB / 2, `the send queue holds ${mib(held)}, limit ${mib(LIMIT)}`)
      assert.equal(s.app.wsSend(id, 'more'), false, 'a closing connection takes nothing more')

      await within(gone, 500 + 2 * LATE, () => 'no closed event for the slow reader')
      assert.ok(performance.now() - refusedAt < 500 + LATE, 'closed within closeTimeout of the refusal')
      assert.deepEqual([closedEvents.length, closedEvents[0].by, closedEvents[0].code, closedEvents[0].reason], [1, 'error', 1008, 'Send buffer limit exceeded'])
      assert.equal(s.app.wsConnection(id), undefined)
      reader.socket.destroy()
      const after = settledMemory()
      assert.ok(after.external - before.external < MiB, `buffers held after the close: ${mib(after.external - before.external)}`)
      t.diagnostic(`slow reader: wsSend took ${mib(accepted * CHUNK)} (the rest in kernel buffers) before refusing; the process held ${mib(held)} for it; ${mib(after.external - before.external)} left after the close`)
    } finally {
      await s.app.close()
    }
  })
})

describe('keepalive finds peers that vanished', () => {
  test('50 silent peers are closed by keepalive within the bound; 50 answering peers stay', async (t) => {
    const PEERS = 50
    const TIMEOUT = 1000
    const INTERVAL = 100
    const CLOSE_TIMEOUT = 300
    const closedEvents: WsClosedEvent[] = []
    let silentClosed: () => void = () => {}
    const allSilentClosed = new Promise<void>((resolve) => { silentClosed = resolve })
    const s = await startApp({ keepaliveTimeout: TIMEOUT, keepaliveInterval: INTERVAL, closeTimeout: CLOSE_TIMEOUT }, (app) => {
      app.addWsHook('websocket:closed', (e) => { closedEvents.push(e); if (closedEvents.length === PEERS) silentClosed() })
    })
    try {
      const started = performance.now()
      // Silent: connected, then neither reading nor answering, as a peer whose network went away.
      const silent = await Promise.all(Array.from({ length: PEERS }, async () => await rawWebSocket(s.port)))
      for (const peer of silent) peer.socket.pause()
      const silentIds = new Set(s.app.wsDump().connections.map((c) => c.id))
      // ws clients answer every Ping with a Pong.
      const answering = await Promise.all(Array.from({ length: PEERS }, async () => await connect(s.url)))
      const pinged = answering.map(async (ws) => await once(ws, 'ping'))

      const bound = 2 * TIMEOUT + 2 * INTERVAL + CLOSE_TIMEOUT + LATE
      await within(allSilentClosed, bound + LATE, () => `${closedEvents.length} of ${PEERS} silent peers closed`)
      const elapsed = performance.now() - started
      // Each is pinged after a timeout of silence, expired after another, then waited for closeTimeout.
      const least = 2 * TIMEOUT + CLOSE_TIMEOUT - CLOCK_SLACK
      assert.ok(elapsed >= least && elapsed < bound, `all closed after ${elapsed.toFixed(0)} ms, expected ${least}-${bound} ms`)
      t.diagnostic(`50 vanished peers closed by keepalive ${elapsed.toFixed(0)} ms after the first connected (bound ${least}-${bound} ms)`)
      for (const e of closedEvents) {
        assert.ok(silentIds.has(e.id), `connection ${e.id} answered its Pings and was still closed`)
        assert.deepEqual([e.by, e.code, e.reason], ['keepalive', 1001, 'Keepalive timeout'])
      }
      assert.equal(new Set(closedEvents.map((e) => e.id)).size, PEERS, 'each closed once')
      await Promise.all(pinged)
      assert.equal(s.app.wsDump().wscounter, PEERS, 'the answering peers are all still registered')
      for (const peer of silent) peer.socket.destroy()
      for (const ws of answering) ws.terminate()
    } finally {
      await s.app.close()
    }
  })
})
