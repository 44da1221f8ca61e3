import assert from 'node:assert/strict'
import { once } from 'node:events'
import http, { type IncomingMessage } from 'node:http'
import https from 'node:https'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { PassThrough, type Duplex } from 'node:stream'
import { describe, test } from 'node:test'
import fastifyWebsocket from '@fastify/websocket'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type WebSocket from 'ws'
import sipWs, { type SipWsOptions, type WsClosedEvent, type WsOpenEvent } from '../../../lib'
import { closeWhenBothEnded, isInjected, normalizeInjectedHeaders } from '../../../lib/handshake/injected'
import { selfSignedCert } from '../../helpers/lwsc'
import { handshakeLines, rawRequest, request } from '../../helpers/raw'

/** An app that is ready but listens on no port: injectWS needs none. */
async function readyApp (options: SipWsOptions = {}, setup?: (app: FastifyInstance) => void, fastifyOptions: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify(fastifyOptions)
  await app.register(sipWs, options)
  setup?.(app)
  await app.ready()
  return app
}

async function nextText (ws: WebSocket): Promise<string> {
  const [data] = await once(ws, 'message') as [Buffer]
  return data.toString()
}

// @fastify/websocket's injectWS emits an upgrade with a plain request object (the version header a number,
// no Host, no socket) and an in-memory stream: the whole path must take it as it takes a real one.
describe('injectWS (testing without a port)', () => {
  test('goes through the xhttp:request hooks, the handshake, the registry and every event hook', async () => {
    const opened: WsOpenEvent[] = []
    let onClosed: (event: WsClosedEvent) => void = () => {}
    const closedEvent = new Promise<WsClosedEvent>((resolve) => { onClosed = resolve })
    let seenByHook: string | undefined
    const app = await readyApp({ subProtocols: ['sip', 'msrp'] }, (app) => {
      app.addWsHook('xhttp:request', async (request, reply) => {
        seenByHook = request.headers.authorization
        if (request.headers.authorization !== 'Bearer t0k3n') return await reply.code(401).send()
      })
      app.addWsHook('websocket:open', (event) => { opened.push(event) })
      app.addWsHook('websocket:message', (msg) => {
        if (!msg.binary) app.wsSend(msg.id, `${msg.subProtocol} got ${msg.data}`)
      })
      app.addWsHook('websocket:closed', (event) => { onClosed(event) })
    })
    try {
      const ws = await app.injectWS('/', { headers: { 'sec-websocket-protocol': 'sip', authorization: 'Bearer t0k3n' } })
      assert.equal(seenByHook, 'Bearer t0k3n')
      const answer = nextText(ws)
      ws.send('OPTIONS sip:edge SIP/2.0')
      assert.equal(await answer, 'sip got OPTIONS sip:edge SIP/2.0')

      assert.equal(opened.length, 1)
      const { id } = opened[0]
      // Nothing crossed a network: the addresses are empty, not made up.
      assert.deepEqual({ ...opened[0], request: undefined }, { id, subProtocol: 'sip', remoteAddress: '', remotePort: 0, socketAddress: '', socketPort: 0, localAddress: '', localPort: 0, request: undefined })
      const info = app.wsConnection(id)
      assert.deepEqual([info?.state, info?.transport, info?.subProtocol], ['OPEN', 'ws', 'sip'])
      assert.equal(app.wsStats().ws_sip_successful_handshakes, 1)

      const pushed = nextText(ws)
      assert.equal(app.wsSend(id, 'NOTIFY'), true)
      assert.equal(await pushed, 'NOTIFY')

      ws.close(1000)
      assert.deepEqual((({ id, by, code }) => ({ id, by, code }))(await closedEvent), { id, by: 'remote', code: 1000 })
      assert.equal(app.wsDump().wscounter, 0)
    } finally { await app.close() }
  })

  test('refusals come back as the rejection injectWS gives: a hook\'s 401, the handshake checks\' 400', async () => {
    const app = await readyApp({ subProtocols: ['sip'] }, (app) => {
      app.addWsHook('xhttp:request', async (request, reply) => {
        if (request.headers.authorization === undefined) return await reply.code(401).send()
      })
    })
    try {
      await assert.rejects(app.injectWS('/', { headers: { 'sec-websocket-protocol': 'sip' } }), /Unexpected server response: 401/)
      const auth = { authorization: 'Bearer x' }
      await assert.rejects(app.injectWS('/', { headers: auth }), /Unexpected server response: 400/)
      await assert.rejects(app.injectWS('/', { headers: { ...auth, 'sec-websocket-protocol': 'msrp' } }), /Unexpected server response: 400/)
      await assert.rejects(app.injectWS('/', { headers: { ...auth, 'sec-websocket-protocol': 'sip, sip' } }), /Unexpected server response: 400/)
      // The checks' refusals are counted; the hook's is not (as in Kamailio).
      assert.equal(app.wsStats().ws_failed_handshakes, 3)
      const ws = await app.injectWS('/', { headers: { ...auth, 'sec-websocket-protocol': 'foo, SIP' } })
      // injectWS's client skips the handshake answer (ws.protocol stays empty): the server side says what it chose.
      assert.equal(app.wsDump().connections[0].subProtocol, 'sip', 'the first enabled one offered')
      ws.terminate()
    } finally { await app.close() }
  })

  test('its headers reach hooks and ws as Node parses them: lower-case names, string values, whatever ws compares', async () => {
    let seen: Record<string, unknown> = {}
    const app = await readyApp({ subProtocols: ['sip'] }, (app) => {
      app.addWsHook('xhttp:request', (request) => { seen = { ...request.headers } })
    })
    try {
      // injectWS sends Sec-WebSocket-Version as the number 13 (ws from 8.23.1 on refuses it) and passes these on as written.
      const headers = { 'Sec-WebSocket-Protocol': 'sip', 'X-Retries': 3, 'x-trace': ['a', 'b'], 'X-Trace': 'c', 'Set-Cookie': ['s=1', 's=2'], 'x-none': undefined }
      const ws = await app.injectWS('/', { headers: headers as unknown as Record<string, string> })
      assert.equal(seen['sec-websocket-version'], '13')
      assert.equal(seen['sec-websocket-protocol'], 'sip')
      assert.equal(seen['x-retries'], '3')
      assert.equal(seen['x-trace'], 'a, b, c')
      assert.deepEqual(seen['set-cookie'], ['s=1', 's=2'])
      assert.deepEqual(Object.keys(seen).filter((name) => name !== name.toLowerCase() || seen[name] === undefined), [])
      assert.equal(app.wsDump().connections[0].subProtocol, 'sip')
      ws.terminate()
    } finally { await app.close() }
  })

  test('a hook may choose the sub-protocol; wsDisable gives 503; paths are honoured', async () => {
    const app = await readyApp({ path: ['/ws'], subProtocols: ['sip', 'msrp'] }, (app) => {
      app.addWsHook('xhttp:request', (request) => { request.wsSubProtocol = 'msrp' })
    })
    try {
      const ws = await app.injectWS('/ws', { headers: { 'sec-websocket-protocol': 'sip, msrp' } })
      assert.equal(app.wsDump().connections[0].subProtocol, 'msrp')
      ws.terminate()
      app.wsDisable()
      await assert.rejects(app.injectWS('/ws', { headers: { 'sec-websocket-protocol': 'sip' } }), /Unexpected server response: 503/)
      app.wsEnable()
      // Not a WebSocket path: @fastify/websocket's own answer for a path with no route.
      await assert.rejects(app.injectWS('/other', { headers: { 'sec-websocket-protocol': 'sip' } }), /Unexpected server response: 404/)
    } finally { await app.close() }
  })

  test('works under trustProxy, where Fastify cannot read an address from an injected request', async () => {
    const opened: WsOpenEvent[] = []
    const app = await readyApp({ maxConnectionsPerIp: 5 }, (app) => {
      app.addWsHook('websocket:open', (event) => { opened.push(event) })
    }, { trustProxy: true })
    try {
      const ws = await app.injectWS('/', { headers: { 'sec-websocket-protocol': 'sip' } })
      assert.deepEqual([opened[0].subProtocol, opened[0].remoteAddress, opened[0].socketAddress], ['sip', '', ''])
      ws.terminate()
    } finally { await app.close() }
  })

  test('app.close() sends an injected connection Close 1001 and runs its closed hook, without waiting out closeTimeout', async () => {
    const closedEvents: WsClosedEvent[] = []
    const app = await readyApp({ closeTimeout: 10_000 }, (app) => { app.addWsHook('websocket:closed', (event) => { closedEvents.push(event) }) })
    const ws = await app.injectWS('/', { headers: { 'sec-websocket-protocol': 'sip' } })
    const seen = once(ws, 'close') as Promise<[number, Buffer]>
    const started = performance.now()
    await app.close()
    // The in-memory stream is closed once both sides ended it, as TCP would be: no wait for closeTimeout.
    const took = performance.now() - started
    assert.ok(took < 5000, `app.close() took ${Math.round(took)} ms`)
    const [code, reason] = await seen
    assert.deepEqual([code, reason.toString()], [1001, 'Going Away'])
    assert.deepEqual(closedEvents.map((e) => [e.by, e.code]), [['local', 1001]])
  })
})

/** The upgrade request a real `injectWS` call emits, caught before anything else reads it. */
async function injectedRequest (headers: Record<string, unknown>): Promise<IncomingMessage> {
  const app = Fastify()
  await app.register(fastifyWebsocket)
  await app.ready()
  let caught: IncomingMessage | null = null
  app.server.prependListener('upgrade', (req: IncomingMessage) => { caught ??= req })
  try {
    await app.injectWS('/', { headers: headers as Record<string, string> }).then((ws) => { ws.terminate() }, () => {})
  } finally { await app.close() }
  assert.ok(caught !== null, 'injectWS emitted an upgrade')
  return caught
}

/** Serves each request's `inspect(req)` as JSON, on plain HTTP or, given a key and certificate, TLS. */
async function inspecting (inspect: (req: IncomingMessage) => unknown, tls?: { key: string, cert: string }): Promise<{ port: number, close: () => Promise<void> }> {
  const answer = (req: IncomingMessage, res: http.ServerResponse): void => { res.end(JSON.stringify(inspect(req))) }
  const server = tls === undefined ? http.createServer(answer) : https.createServer(tls, answer)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
}

describe('isInjected', () => {
  test('false for requests over TCP, TLS included; true for injectWS\'s, which came over no socket', async () => {
    const plain = await inspecting(isInjected)
    const { key, cert } = await selfSignedCert()
    const secure = await inspecting(isInjected, { key, cert })
    try {
      const res = await rawRequest(plain.port, request(handshakeLines(plain.port)))
      res.socket.destroy()
      assert.equal(res.body, 'false')
      const tlsAnswer = await new Promise<string>((resolve, reject) => {
        https.get({ host: '127.0.0.1', port: secure.port, ca: cert, agent: false }, (r) => {
          let body = ''
          r.on('data', (chunk: Buffer) => { body += chunk.toString() })
          r.on('end', () => { resolve(body) })
        }).on('error', reject)
      })
      assert.equal(tlsAnswer, 'false')
    } finally { await plain.close(); await secure.close() }
    assert.equal(isInjected(await injectedRequest({})), true)
  })
})

describe('normalizeInjectedHeaders', () => {
  test('an injected request\'s headers become what Node gives: lower-case names, strings, repeats joined, Set-Cookie a list, nothing empty', async () => {
    const req = await injectedRequest({ 'X-Count': 3, 'X-Flag': true, 'x-list': ['a', 'b'], 'X-LIST': 'c', 'x-gone': null, 'x-unset': undefined, 'Set-Cookie': 's=1', 'set-cookie': ['s=2', 's=3'], Authorization: 'Bearer t' })
    const headers = req.headers
    assert.equal((headers as Record<string, unknown>)['sec-websocket-version'], 13, 'injectWS sends the version as a number')
    normalizeInjectedHeaders(req)
    assert.equal(req.headers, headers, 'the same object, changed in place: ws and hooks read that one')
    const { 'sec-websocket-key': key, ...rest } = req.headers
    assert.match(String(key), /^[A-Za-z0-9+/]{22}==$/)
    assert.deepEqual(rest, {
      'x-count': '3',
      'x-flag': 'true',
      'x-list': 'a, b, c',
      'set-cookie': ['s=1', 's=2', 's=3'],
      authorization: 'Bearer t',
      connection: 'upgrade',
      upgrade: 'websocket',
      'sec-websocket-version': '13'
    })
    const once = structuredClone(req.headers)
    normalizeInjectedHeaders(req)
    assert.deepEqual(req.headers, once, 'normalizing again changes nothing')
  })

  test('a request Node parsed is left exactly as it is', async () => {
    let seen: { before: unknown, after: unknown, same: boolean } | null = null
    const server = await inspecting((req) => {
      const before = structuredClone(req.headers)
      const object = req.headers
      normalizeInjectedHeaders(req)
      seen = { before, after: req.headers, same: object === req.headers }
      return null
    })
    try {
      const lines = handshakeLines(server.port, { 'X-Mixed': 'One' })
      const res = await rawRequest(server.port, request([...lines, 'Set-Cookie: a=1', 'Set-Cookie: b=2', 'X-Twice: 1', 'X-Twice: 2']))
      res.socket.destroy()
      assert.ok(seen !== null)
      const { before, after, same } = seen as { before: Record<string, unknown>, after: Record<string, unknown>, same: boolean }
      assert.equal(same, true)
      assert.deepEqual(after, before)
      assert.deepEqual([before['x-mixed'], before['set-cookie'], before['x-twice']], ['One', ['a=1', 'b=2'], '1, 2'])
    } finally { await server.close() }
  })
})

describe('closeWhenBothEnded on the streams injectWS connects through', () => {
  // The stream class injectWS uses, loaded as @fastify/websocket loads it.
  const Duplexify = createRequire(require.resolve('@fastify/websocket'))('duplexify') as new (writable: PassThrough, readable: PassThrough) => Duplex

  /** The server's end of an in-memory pair as injectWS builds it, and ways to end each direction. */
  function serverEnd (): { stream: Duplex, closed: Promise<boolean>, endIncoming: () => Promise<void>, endOutgoing: () => Promise<void> } {
    const toClient = new PassThrough()
    const toServer = new PassThrough()
    const stream = new Duplexify(toClient, toServer)
    toClient.resume()
    stream.resume()
    const ended = once(stream, 'end')
    const finished = once(stream, 'finish')
    return {
      stream,
      closed: new Promise((resolve) => { stream.once('close', () => { resolve(true) }) }),
      endIncoming: async () => { toServer.end(); await ended },
      endOutgoing: async () => { stream.end(); await finished }
    }
  }
  const settled = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }

  test('without it the stream stays open once both directions ended: why it exists', async () => {
    const pair = serverEnd()
    await pair.endIncoming()
    await pair.endOutgoing()
    await settled()
    assert.equal(pair.stream.destroyed, false)
    pair.stream.destroy()
  })

  for (const order of ['incoming first', 'outgoing first']) {
    test(`it destroys the stream once both directions ended, ${order}; not after one`, async () => {
      const pair = serverEnd()
      closeWhenBothEnded(pair.stream)
      const [first, second] = order === 'incoming first' ? [pair.endIncoming, pair.endOutgoing] : [pair.endOutgoing, pair.endIncoming]
      await first()
      await settled()
      assert.equal(pair.stream.destroyed, false, 'one direction still open')
      await second()
      assert.equal(await pair.closed, true)
      assert.equal(pair.stream.destroyed, true)
    })
  }
})
