import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import Fastify from 'fastify'
import sipWs, { type WsOpenEvent } from '../../lib'
import { handshakeLines, rawRequest, request } from '../helpers/raw'
import { closed, connect, nextMessage, startApp } from '../helpers/server'

async function refusal (port: number, extra: Record<string, string | null> = {}): Promise<{ status: number, headers: Record<string, string>, body: string }> {
  const res = await rawRequest(port, request(handshakeLines(port, extra)))
  res.socket.destroy()
  return res
}

describe('xhttp:request hooks', () => {
  test('run in order, may be async, and `this` is the Fastify instance', async () => {
    const order: string[] = []
    const s = await startApp({}, (app) => {
      app.addWsHook('xhttp:request', async function (request) {
        assert.equal(this, app)
        await new Promise((resolve) => setImmediate(resolve))
        order.push(`a:${request.headers.host ?? ''}`)
      })
      app.addWsHook('xhttp:request', function () { order.push('b') })
    })
    try {
      const ws = await connect(s.url)
      assert.deepEqual(order, [`a:127.0.0.1:${s.port}`, 'b'])
      ws.terminate()
    } finally { await s.app.close() }
  })

  test('a hook that replies refuses the upgrade with its status and headers; later hooks do not run', async () => {
    const seen: string[] = []
    const s = await startApp({}, (app) => {
      app.addWsHook('xhttp:request', async (request, reply) => {
        const origin = request.headers.origin
        if (origin !== undefined && origin !== 'https://good.example') return await reply.code(403).send('Forbidden origin')
        if (request.headers.authorization !== 'Bearer t0k3n') {
          return await reply.code(401).header('WWW-Authenticate', 'Bearer realm="sip"').send()
        }
      })
      app.addWsHook('xhttp:request', () => { seen.push('second') })
      app.addWsHook('websocket:message', () => { seen.push('message') })
    })
    try {
      const forbidden = await refusal(s.port, { Origin: 'https://evil.example', Authorization: 'Bearer t0k3n' })
      assert.equal(forbidden.status, 403)
      assert.equal(forbidden.body, 'Forbidden origin')
      const unauth = await refusal(s.port, { Origin: 'https://good.example' })
      assert.equal(unauth.status, 401)
      assert.equal(unauth.headers['www-authenticate'], 'Bearer realm="sip"')
      assert.deepEqual(seen, [])
      assert.equal(s.app.wsStats().ws_failed_handshakes, 0, 'hook refusals are not handshake failures, as in Kamailio')
      const ws = await connect(s.url, 'sip', { headers: { Authorization: 'Bearer t0k3n', Origin: 'https://good.example' } })
      ws.send('hi')
      ws.close()
      await closed(ws)
      assert.deepEqual(seen, ['second', 'message'])
    } finally { await s.app.close() }
  })

  test('a hook may answer 404 on a path it does not want', async () => {
    const s = await startApp({}, (app) => {
      app.addWsHook('xhttp:request', async (request, reply) => {
        if (!request.url.startsWith('/?ok')) await reply.code(404).send()
      })
    })
    try {
      assert.equal((await refusal(s.port)).status, 404)
      const ws = await connect(s.url + '/?ok=1')
      ws.terminate()
    } finally { await s.app.close() }
  })

  test('a throwing hook becomes a 500, is logged, and the server keeps serving', async () => {
    const logged: unknown[] = []
    const app = Fastify({ logger: { level: 'error', stream: { write: (line: string) => { logged.push(JSON.parse(line)) } } } })
    await app.register(sipWs)
    let fail = true
    app.addWsHook('xhttp:request', async () => { if (fail) throw new Error('boom in hook') })
    app.addWsHook('xhttp:request', () => { if (fail) throw new Error('never reached') })
    await app.listen({ host: '127.0.0.1', port: 0 })
    const port = (app.server.address() as { port: number }).port
    try {
      const res = await refusal(port)
      assert.equal(res.status, 500)
      assert.ok(logged.some((l) => JSON.stringify(l).includes('boom in hook')))
      fail = false
      const ws = await connect(`ws://127.0.0.1:${port}`)
      ws.terminate()
    } finally { await app.close() }
  })

  test('a hook error with a statusCode keeps that status', async () => {
    const s = await startApp({}, (app) => {
      app.addWsHook('xhttp:request', () => { throw Object.assign(new Error('slow down'), { statusCode: 429 }) })
    })
    try {
      assert.equal((await refusal(s.port)).status, 429)
    } finally { await s.app.close() }
  })

  test('unknown hook names and non-functions are rejected with stable codes', async () => {
    const s = await startApp()
    try {
      assert.throws(() => { s.app.addWsHook('websocket:nope' as 'websocket:closed', () => {}) }, { code: 'FST_SIPWS_UNKNOWN_HOOK' })
      assert.throws(() => { s.app.addWsHook('websocket:closed', 42 as unknown as () => void) }, { code: 'FST_SIPWS_HOOK_NOT_FUNCTION' })
    } finally { await s.app.close() }
  })
})

describe('websocket:open and websocket:message hooks', () => {
  test('open carries the id, addresses, sub-protocol and the upgrade request', async () => {
    const opened: WsOpenEvent[] = []
    const s = await startApp({}, (app) => {
      app.addWsHook('xhttp:request', async (request) => { (request as unknown as { user: string }).user = 'alice' })
      app.addWsHook('websocket:open', (e) => { opened.push(e) })
    })
    try {
      const ws = await connect(s.url, 'msrp')
      assert.equal(opened.length, 1)
      const e = opened[0]
      assert.equal(e.subProtocol, 'msrp')
      assert.equal(e.remoteAddress, '127.0.0.1')
      assert.equal(e.localPort, s.port)
      assert.equal((e.request as unknown as { user: string }).user, 'alice')
      assert.deepEqual(s.app.wsConnection(e.id)?.remotePort, e.remotePort)
      ws.terminate()
    } finally { await s.app.close() }
  })

  test('every message reaches the hooks in order with id, sub-protocol and address; a throwing hook is logged and the connection stays up', async () => {
    const logged: string[] = []
    const app = Fastify({ logger: { level: 'error', stream: { write: (line: string) => { logged.push(line) } } } })
    await app.register(sipWs)
    const seen: string[] = []
    app.addWsHook('websocket:message', (m) => { if (m.data === 'throw') throw new Error('sync failure') })
    app.addWsHook('websocket:message', async (m) => {
      await new Promise((resolve) => setImmediate(resolve))
      if (m.data === 'reject') throw new Error('async failure')
    })
    app.addWsHook('websocket:message', (m) => {
      seen.push(`${m.id}:${String(m.data)}:${m.subProtocol}:${m.remoteAddress}`)
      app.wsSend(m.id, `ack:${String(m.data)}`)
    })
    await app.listen({ host: '127.0.0.1', port: 0 })
    const port = (app.server.address() as { port: number }).port
    try {
      const ws = await connect(`ws://127.0.0.1:${port}`)
      for (const text of ['throw', 'reject', 'fine']) {
        ws.send(text)
        assert.equal(String((await nextMessage(ws)).data), `ack:${text}`)
      }
      const id = app.wsDump().connections[0].id
      assert.deepEqual(seen, ['throw', 'reject', 'fine'].map((t) => `${id}:${t}:sip:127.0.0.1`))
      assert.ok(logged.some((l) => l.includes('sync failure')))
      assert.ok(logged.some((l) => l.includes('async failure')))
      assert.equal(ws.readyState, ws.OPEN)
      ws.terminate()
    } finally { await app.close() }
  })
})
