import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import { UPGRADE_CONSTRAINT } from '../../../lib/handshake/route'
import { startEdge } from '../../helpers/edge'
import { handshakeLines, httpRequest, rawRequest, request } from '../../helpers/raw'
import { startApp } from '../../helpers/server'

async function status (port: number, first: string, extra: Record<string, string | null> = {}): Promise<{ status: number, headers: Record<string, string>, headerLines: Array<[string, string]> }> {
  const res = await rawRequest(port, request(handshakeLines(port, extra, first)))
  res.socket.destroy()
  return res
}

describe('registerRoutes', () => {
  test('an upgrade runs the app\'s hooks (added before or after register), the `route` option\'s, then xhttp:request, in Fastify\'s order', async (t) => {
    const order: string[] = []
    const log = (name: string) => (request: { ws: boolean | null }, _reply: unknown, done: () => void): void => { order.push(`${name}${request.ws === true ? '' : ' (not ws)'}`); done() }
    const { app, port } = await startApp({
      route: { onRequest: log('route onRequest'), preValidation: log('route preValidation'), preHandler: [log('route preHandler')] }
    }, (app) => {
      app.addHook('onRequest', log('app onRequest (after register)'))
      app.addHook('preHandler', log('app preHandler'))
      app.addWsHook('xhttp:request', (request) => { order.push(`xhttp:request ${request.routeOptions.url ?? ''}`) })
      app.addWsHook('websocket:open', () => { order.push('websocket:open') })
    })
    t.after(async () => { await app.close() })
    assert.equal((await status(port, 'GET / HTTP/1.1')).status, 101)
    assert.deepEqual(order, ['app onRequest (after register)', 'route onRequest', 'route preValidation', 'app preHandler', 'route preHandler', 'xhttp:request /', 'websocket:open'])
  })

  test('a plain request on the path goes to the app\'s own route, registered after the plugin; a plain GET without one gets 400', async (t) => {
    const { app, port } = await startApp({ path: ['/', '/ws'] }, (app) => {
      app.get('/', async () => 'the page')
    })
    t.after(async () => { await app.close() })
    const page = await httpRequest(port, 'GET', '/')
    assert.deepEqual([page.status, page.body], [200, 'the page'])
    assert.equal((await httpRequest(port, 'GET', '/ws')).status, 400)
    assert.equal((await status(port, 'GET / HTTP/1.1')).status, 101, 'and the upgrade on the same path is the plugin\'s')
    assert.equal((await status(port, 'GET /ws HTTP/1.1')).status, 101)
  })

  test('a non-GET upgrade reaches the handshake checks (405); an upgrade elsewhere is the app\'s (404, or its own @fastify/websocket route)', async (t) => {
    const { app, port } = await startApp({ path: ['/sip'] }, (app) => {
      app.get('/echo', { websocket: true }, (socket) => { socket.on('message', (data) => { socket.send(data) }) })
    })
    t.after(async () => { await app.close() })
    for (const method of ['POST', 'PUT', 'HEAD']) {
      const res = await status(port, `${method} /sip HTTP/1.1`)
      assert.deepEqual([res.status, res.headers.allow], [405, 'GET'], method)
    }
    assert.equal((await status(port, 'GET /elsewhere HTTP/1.1')).status, 404)
    const ws = new WebSocket(`ws://127.0.0.1:${port}/echo`)
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
    ws.send('hello')
    const [echoed] = await new Promise<[Buffer]>((resolve) => { ws.once('message', (...args: [Buffer]) => { resolve(args) }) })
    assert.equal(echoed.toString(), 'hello')
    ws.terminate()
    assert.equal(app.wsStats().ws_successful_handshakes, 0, 'the app\'s own WebSocket route is none of the plugin\'s')
  })

  test('a path is taken as written: a ":" is no parameter', async (t) => {
    const { app, port } = await startApp({ path: ['/sip:ws'] })
    t.after(async () => { await app.close() })
    assert.equal((await status(port, 'GET /sip:ws HTTP/1.1')).status, 101)
    assert.equal((await status(port, 'GET /sip:other HTTP/1.1')).status, 404)
  })

  test('headers a hook put on the reply go on the 101, except those of a body or of the handshake itself', async (t) => {
    const { app, port } = await startApp({}, (app: FastifyInstance) => {
      app.addHook('onRequest', async (_request, reply) => { reply.header('x-edge', 'a').header('content-type', 'text/html').header('connection', 'keep-alive') })
      app.addWsHook('xhttp:request', async (_request, reply) => { reply.header('set-cookie', ['a=1', 'b=2']) })
    })
    t.after(async () => { await app.close() })
    const res = await status(port, 'GET / HTTP/1.1')
    assert.equal(res.status, 101)
    assert.equal(res.headers['x-edge'], 'a')
    assert.deepEqual(res.headerLines.filter(([name]) => name === 'set-cookie').map(([, value]) => value), ['a=1', 'b=2'])
    assert.equal(res.headers['content-type'], undefined)
    assert.deepEqual(res.headerLines.filter(([name]) => name === 'connection'), [['connection', 'Upgrade']])
  })

  test('the app gets the constraint strategy; only the edge\'s paths are its routes', async (t) => {
    const first = await startEdge({ path: ['/a'] }, (app) => {
      assert.ok(app.hasConstraintStrategy(UPGRADE_CONSTRAINT))
    })
    t.after(first.close)
    assert.deepEqual([(await status(first.port, 'GET /a HTTP/1.1')).status, (await status(first.port, 'GET /b HTTP/1.1')).status], [101, 404])
    assert.equal(first.edge.stats.snapshot().ws_successful_handshakes, 1)
  })
})

describe('xhttp:request in Fastify\'s callback style', () => {
  test('done() lets the upgrade on, done(err) refuses it through the error handler, a reply without done is the answer', async (t) => {
    const { app, port } = await startApp({}, (app) => {
      app.addWsHook('xhttp:request', function (request, reply, done) {
        const how = new URL(request.url, 'http://x').searchParams.get('how')
        if (how === 'err') { void reply.code(403); done(new Error('not you')); return }
        if (how === 'reply') { void reply.code(402).send('pay first'); return }
        if (how === 'later') { setTimeout(done, 10); return }
        done()
      })
    })
    t.after(async () => { await app.close() })
    const answers = []
    for (const how of ['ok', 'later', 'err', 'reply']) answers.push((await status(port, `GET /?how=${how} HTTP/1.1`)).status)
    assert.deepEqual(answers, [101, 101, 403, 402])
    assert.equal(app.wsStats().ws_successful_handshakes, 2)
  })
})
