import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import http2 from 'node:http2'
import https from 'node:https'
import net, { type AddressInfo } from 'node:net'
import tls from 'node:tls'
import { describe, test, type TestContext } from 'node:test'
import pino from 'pino'
import { HandshakeTimeout } from '../../../lib/handshake/timeout'
import { selfSignedCert } from '../../helpers/lwsc'
import { within } from '../../helpers/pool'
import { readResponse } from '../../helpers/raw'

// libuv starts a timer from the event loop's cached clock, which can lag the real one by a few ms.
const CLOCK_SLACK = 25
// How late a timer may fire on a loaded 2-core machine and still count as on time.
const LATE = 1500
const TIMEOUT = 300
const REQUEST = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'

interface Client {
  socket: net.Socket
  /** Resolves when the server ends the connection: how long after connecting, and what it answered. */
  ended: Promise<{ elapsed: number, answer: string }>
  connectedAt: number
  /** The client's own port, as the server sees it. */
  localPort: number
}

/** A TCP client that sends `bytes` (maybe none) once connected, and records what comes back. */
async function client (port: number, bytes = ''): Promise<Client> {
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  await once(socket, 'connect')
  const connectedAt = performance.now()
  let answer = ''
  socket.on('data', (chunk: Buffer) => { answer += chunk.toString('latin1') })
  if (bytes !== '') socket.write(bytes)
  const ended = new Promise((resolve) => socket.once('close', resolve)).then(() => ({ elapsed: performance.now() - connectedAt, answer }))
  return { socket, ended, connectedAt, localPort: socket.localPort ?? 0 }
}

interface Timed {
  server: http.Server
  port: number
  timeout: HandshakeTimeout
  timedOut: () => number
  logged: Array<Record<string, unknown>>
  clients: net.Socket[]
}

/** An HTTP server on 127.0.0.1 answering 200, with a HandshakeTimeout started on it; all closed after the test. */
async function timedServer (t: TestContext, timeoutMs: number, server = http.createServer((_req, res) => { res.end('ok') })): Promise<Timed> {
  const logged: Array<Record<string, unknown>> = []
  const log = pino({ level: 'info' }, { write: (line: string) => { logged.push(JSON.parse(line) as Record<string, unknown>) } })
  let timedOut = 0
  const timeout = new HandshakeTimeout(server, timeoutMs, log, () => { timedOut++ })
  timeout.start()
  const clients: net.Socket[] = []
  server.on('connection', (socket: net.Socket) => { clients.push(socket) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.after(async () => {
    timeout.stop()
    for (const socket of clients) socket.destroy()
    server.closeAllConnections?.()
    await new Promise((resolve) => { server.close(resolve) })
  })
  return { server, port: (server.address() as AddressInfo).port, timeout, timedOut: () => timedOut, logged, clients }
}

async function dropped (c: Client, ms: number): Promise<{ elapsed: number, answer: string }> {
  return await within(c.ended, ms + LATE, () => `a connection was not dropped after ${ms} ms`)
}

describe('HandshakeTimeout', () => {
  test('a connection that sends nothing, or only part of a request head, gets 408 and is dropped after the timeout', async (t) => {
    const s = await timedServer(t, TIMEOUT)
    const silent = await client(s.port)
    const partial = await client(s.port, 'GET / HTTP/1.1\r\nHost: x\r\nUpgr')
    for (const c of [silent, partial]) {
      const { elapsed, answer } = await dropped(c, TIMEOUT)
      assert.ok(elapsed >= TIMEOUT - CLOCK_SLACK, `dropped after ${elapsed.toFixed(0)} ms`)
      assert.equal(answer, 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
    }
    assert.equal(s.timedOut(), 2, 'each drop counted once')
    const lines = s.logged.filter((l) => l.msg === 'fastify-sip-ws: no complete request head within handshakeTimeout, dropping the connection')
    assert.deepEqual(lines.map((l) => [l.level, l.remoteAddress, l.handshakeTimeout]), [[30, '127.0.0.1', TIMEOUT], [30, '127.0.0.1', TIMEOUT]])
    assert.deepEqual(lines.map((l) => l.remotePort).sort(), [silent.localPort, partial.localPort].sort())
  })

  test('a complete request head ends the timing: a kept-alive connection idle past the timeout stays', async (t) => {
    const s = await timedServer(t, TIMEOUT)
    const kept = await client(s.port, REQUEST)
    assert.equal((await readResponse(kept.socket)).status, 200)
    // Connected after the kept one: once it is dropped, the kept one's timer would have fired too.
    const sentinel = await client(s.port)
    await dropped(sentinel, TIMEOUT)
    assert.equal(kept.socket.destroyed, false)
    kept.socket.write(REQUEST)
    assert.equal((await readResponse(kept.socket)).status, 200, 'it serves its next request')
    assert.equal(s.timedOut(), 1)
  })

  test('a client that leaves first is forgotten: nothing counted or logged for it', async (t) => {
    const s = await timedServer(t, TIMEOUT)
    const leaver = await client(s.port)
    leaver.socket.destroy()
    await leaver.ended
    const sentinel = await client(s.port)
    await dropped(sentinel, TIMEOUT)
    assert.equal(s.timedOut(), 1)
    assert.equal(s.logged.filter((l) => l.handshakeTimeout !== undefined).length, 1)
  })

  test('a connection the server already wrote to completed its request another way and is spared', async (t) => {
    // A server that greets first, as a CONNECT tunnel or a 100-continue answer writes before any 'request'.
    const s = await timedServer(t, TIMEOUT)
    let greeted = 0
    s.server.on('connection', (socket: net.Socket) => { if (greeted++ === 0) socket.write('hello\r\n') })
    const spoken = await client(s.port)
    await once(spoken.socket, 'data')
    const sentinel = await client(s.port)
    await dropped(sentinel, TIMEOUT)
    assert.equal(spoken.socket.destroyed, false)
    assert.equal(s.timedOut(), 1)
  })

  test('upgrade requests: it listens to them only where someone else already does, and a complete one ends the timing', async (t) => {
    const plain = await timedServer(t, TIMEOUT)
    assert.equal(plain.server.listenerCount('upgrade'), 0, 'a first upgrade listener would change how Node treats upgrades')
    const upgrading = http.createServer((_req, res) => { res.end('ok') })
    const held: net.Socket[] = []
    // Takes the socket and says nothing yet, as a slow xhttp:request hook does.
    upgrading.on('upgrade', (_req, socket: net.Socket) => { held.push(socket) })
    const s = await timedServer(t, TIMEOUT, upgrading)
    assert.equal(upgrading.listenerCount('upgrade'), 2)
    assert.ok(upgrading.listeners('upgrade').includes(s.timeout.upgradeListener), 'upgradeListener names its own')
    const upgrade = await client(s.port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n')
    const sentinel = await client(s.port)
    await dropped(sentinel, TIMEOUT)
    assert.equal(held.length, 1)
    assert.equal(upgrade.socket.destroyed, false)
    assert.equal(s.timedOut(), 1)
    s.timeout.stop()
    assert.deepEqual(upgrading.listeners('upgrade').length, 1, 'stop() takes only its own away')
  })

  test('stop() removes its listeners and forgets the connections it was timing', async (t) => {
    const s = await timedServer(t, TIMEOUT)
    const armed = await client(s.port)
    const counts = (): number[] => ['connection', 'request', 'upgrade'].map((e) => s.server.listenerCount(e))
    const withIt = counts()
    s.timeout.stop()
    assert.deepEqual(counts(), [withIt[0] - 1, withIt[1] - 1, withIt[2]])
    // Another one times the connections from now on: its drop of a later client is the clock.
    let second = 0
    const again = new HandshakeTimeout(s.server, TIMEOUT, pino({ level: 'silent' }), () => { second++ })
    again.start()
    t.after(() => { again.stop() })
    const sentinel = await client(s.port)
    await dropped(sentinel, TIMEOUT)
    assert.equal(armed.socket.destroyed, false, 'its timer went with stop()')
    assert.deepEqual([s.timedOut(), second], [0, 1])
  })

  test('timeout 0 only tracks: closing(grace) then drops those waiting, and those accepted after, once the grace is over', async (t) => {
    const s = await timedServer(t, 0)
    const early = await client(s.port)
    // A round trip on another connection: the early one was accepted, and left alone.
    const other = await client(s.port, REQUEST)
    assert.equal((await readResponse(other.socket)).status, 200)
    assert.equal(early.socket.destroyed, false)
    const GRACE = 200
    const closingAt = performance.now()
    s.timeout.closing(GRACE)
    const late = await client(s.port)
    for (const c of [early, late]) {
      const { answer } = await dropped(c, GRACE)
      assert.match(answer, /^HTTP\/1\.1 408 Request Timeout\r\n/)
    }
    assert.ok(performance.now() - closingAt >= GRACE - CLOCK_SLACK)
    assert.ok((await late.ended).elapsed >= GRACE - CLOCK_SLACK, 'a connection accepted after closing() gets the whole grace')
    assert.equal(s.timedOut(), 2)
    assert.deepEqual(s.logged.map((l) => l.handshakeTimeout), [GRACE, GRACE])
  })

  test('closing(grace) never lengthens a shorter timeout, and shortens a longer one', async (t) => {
    const short = await timedServer(t, TIMEOUT)
    short.timeout.closing(60_000)
    await dropped(await client(short.port), TIMEOUT)
    assert.equal(short.logged[0]?.handshakeTimeout, TIMEOUT)
    const long = await timedServer(t, 60_000)
    const waiting = await client(long.port)
    const other = await client(long.port, REQUEST)
    assert.equal((await readResponse(other.socket)).status, 200)
    long.timeout.closing(TIMEOUT)
    assert.match((await dropped(waiting, TIMEOUT)).answer, /^HTTP\/1\.1 408 /, 'its 60 s timer was replaced')
    assert.equal(long.logged[0]?.handshakeTimeout, TIMEOUT)
  })

  test('over TLS it times from the end of the TLS handshake: a TCP client still before it is not its to drop', async (t) => {
    const { key, cert } = await selfSignedCert()
    const s = await timedServer(t, TIMEOUT, https.createServer({ key, cert }, (_req, res) => { res.end('ok') }) as unknown as http.Server)
    const bare = await client(s.port)
    const secure = tls.connect({ host: '127.0.0.1', port: s.port, ca: cert })
    secure.on('error', () => {})
    await once(secure, 'secureConnect')
    let answer = ''
    secure.on('data', (chunk: Buffer) => { answer += chunk.toString() })
    const started = performance.now()
    await within(once(secure, 'close'), TIMEOUT + LATE, () => 'the silent TLS client was not dropped')
    assert.ok(performance.now() - started >= TIMEOUT - CLOCK_SLACK)
    assert.match(answer, /^HTTP\/1\.1 408 Request Timeout\r\n/)
    assert.equal(bare.socket.destroyed, false, 'the TLS handshake has its own bound (https handshakeTimeout)')
    assert.equal(s.timedOut(), 1)
  })

  test('on an HTTP/2 server that takes HTTP/1.1 too, HTTP/1.1 connections are timed and HTTP/2 sessions are not', async (t) => {
    const { key, cert } = await selfSignedCert()
    const server = http2.createSecureServer({ allowHTTP1: true, key, cert }, (_req, res) => { res.end('ok') })
    const s = await timedServer(t, TIMEOUT, server as unknown as http.Server)
    const session = http2.connect(`https://127.0.0.1:${s.port}`, { ca: cert })
    session.on('error', () => {})
    t.after(() => { session.destroy() })
    await once(session, 'connect')
    const http1 = tls.connect({ host: '127.0.0.1', port: s.port, ca: cert, ALPNProtocols: ['http/1.1'] })
    http1.on('error', () => {})
    await once(http1, 'secureConnect')
    assert.equal(http1.alpnProtocol, 'http/1.1')
    let answer = ''
    http1.on('data', (chunk: Buffer) => { answer += chunk.toString() })
    await within(once(http1, 'close'), TIMEOUT + LATE, () => 'the silent HTTP/1.1 client was not dropped')
    assert.match(answer, /^HTTP\/1\.1 408 Request Timeout\r\n/)
    assert.equal(s.timedOut(), 1)
    // The session outlived the timeout with nothing sent, and still serves.
    const stream = session.request({ ':path': '/' })
    let body = ''
    stream.on('data', (chunk: Buffer) => { body += chunk.toString() })
    await once(stream, 'end')
    assert.deepEqual([body, s.timedOut()], ['ok', 1])
  })
})
