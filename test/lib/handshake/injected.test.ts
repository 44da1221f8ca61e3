import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type WebSocket from 'ws'
import sipWs, { type SipWsOptions, type WsClosedEvent, type WsOpenEvent } from '../../../lib'

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
