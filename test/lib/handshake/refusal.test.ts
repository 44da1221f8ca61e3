import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { describe, test } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import { Stats } from '../../../lib/connection/stats'
import { rawResponse, refuse, type Refusal } from '../../../lib/handshake/refusal'
import { httpRequest } from '../../helpers/raw'
import { loggedApp } from '../../helpers/server'

/** Serves `bytes` as the whole answer to any connection, and reads it with Node's own HTTP client. */
async function parsedByNode (bytes: string): Promise<{ status: number, statusMessage: string, headers: http.IncomingHttpHeaders, body: string }> {
  const server = net.createServer((socket) => { socket.on('error', () => {}); socket.end(bytes) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  try {
    const { port } = server.address() as AddressInfo
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/', agent: false }, resolve).on('error', reject)
    })
    let body = ''
    res.setEncoding('utf8')
    for await (const chunk of res) body += chunk as string
    return { status: res.statusCode ?? 0, statusMessage: res.statusMessage ?? '', headers: res.headers, body }
  } finally {
    server.close()
  }
}

describe('rawResponse', () => {
  test('the exact bytes of a refusal: status line, its headers, Connection: close, a text body and its length', () => {
    const bytes = rawResponse({ status: 503, headers: { 'Retry-After': '5' }, message: 'WebSocket service shutting down' })
    assert.equal(bytes, [
      'HTTP/1.1 503 Service Unavailable',
      'Retry-After: 5',
      'Connection: close',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Length: 31',
      '',
      'WebSocket service shutting down'
    ].join('\r\n'))
  })

  test('Node\'s HTTP parser reads it whole: a length in bytes, not characters; header values of any type', async () => {
    const message = 'Refusé: réessayez plus tard'
    const res = await parsedByNode(rawResponse({ status: 503, headers: { 'Retry-After': 5, 'X-Reasons': ['a', 'b'] }, message }))
    assert.deepEqual([res.status, res.statusMessage], [503, 'Service Unavailable'])
    assert.equal(res.headers['content-length'], String(Buffer.byteLength(message)))
    assert.equal(res.headers['retry-after'], '5')
    assert.equal(res.headers['x-reasons'], 'a,b')
    assert.equal(res.headers.connection, 'close')
    assert.equal(res.body, message)
  })

  test('a status Node has no text for still makes a valid status line', async () => {
    const bytes = rawResponse({ status: 599, message: 'odd' })
    assert.ok(bytes.startsWith('HTTP/1.1 599 \r\n'))
    const res = await parsedByNode(bytes)
    assert.deepEqual([res.status, res.body], [599, 'odd'])
  })
})

describe('refuse', () => {
  /** An app whose route refuses with what the test puts in `next`, and the Stats it counts in. */
  async function refusingApp (): Promise<{ app: FastifyInstance, port: number, stats: Stats, next: { refusal: Refusal, sendFirst: boolean }, log: ReturnType<typeof loggedApp> }> {
    const log = loggedApp('info')
    const app = Fastify(log.fastifyOptions)
    const stats = new Stats(['sip'])
    const next = { refusal: { status: 400, message: 'no' } as Refusal, sendFirst: false }
    app.get('/', async (request, reply) => {
      if (next.sendFirst) await reply.code(401).send('a hook answered first')
      refuse(request, reply, next.refusal, stats)
      return reply
    })
    await app.listen({ host: '127.0.0.1', port: 0 })
    return { app, port: (app.server.address() as AddressInfo).port, stats, next, log }
  }

  test('answers the status, its headers and the reason as text, closes the connection, counts and logs one line', async (t) => {
    const s = await refusingApp()
    t.after(async () => { await s.app.close() })
    s.next.refusal = { status: 426, headers: { 'Sec-WebSocket-Version': '13' }, message: 'Unsupported WebSocket version 8; this server speaks 13' }
    const res = await httpRequest(s.port, 'GET', '/', { Connection: 'keep-alive' })
    assert.equal(res.statusLine, 'HTTP/1.1 426 Upgrade Required')
    assert.equal(res.headers['sec-websocket-version'], '13')
    assert.equal(res.headers.connection, 'close', 'even when the client asked to keep it')
    assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8')
    assert.equal(res.body, 'Unsupported WebSocket version 8; this server speaks 13')
    assert.equal(s.stats.snapshot().ws_failed_handshakes, 1)
    const lines = s.log.entries.filter((e) => e.msg?.startsWith('fastify-sip-ws:'))
    assert.deepEqual(lines.map((e) => [e.level, e.msg, e.status, e.reason, e.remoteAddress]), [[30, 'fastify-sip-ws: handshake refused', 426, s.next.refusal.message, '127.0.0.1']])
  })

  test('a 500 is our own or a hook\'s mistake: the log names it at error level, the client only learns it was ours', async (t) => {
    const s = await refusingApp()
    t.after(async () => { await s.app.close() })
    s.next.refusal = { status: 500, message: 'An xhttp:request hook set request.wsSubProtocol to a number; expected the name of an offered sub-protocol' }
    const res = await httpRequest(s.port, 'GET', '/')
    assert.deepEqual([res.status, res.body], [500, 'Internal Server Error'])
    const entry = await s.log.next('fastify-sip-ws: handshake failed')
    assert.equal(entry.level, 50)
    assert.equal(entry.msg, `fastify-sip-ws: handshake failed: ${s.next.refusal.message}`)
    assert.deepEqual([entry.status, entry.reason], [500, s.next.refusal.message])
    assert.equal(s.stats.snapshot().ws_failed_handshakes, 1)
  })

  test('a reply already sent (a hook answered) is left alone: not counted, not logged', async (t) => {
    const s = await refusingApp()
    t.after(async () => { await s.app.close() })
    s.next.sendFirst = true
    const res = await httpRequest(s.port, 'GET', '/')
    assert.deepEqual([res.status, res.body], [401, 'a hook answered first'])
    assert.equal(s.stats.snapshot().ws_failed_handshakes, 0)
    assert.equal(s.log.entries.filter((e) => e.msg?.startsWith('fastify-sip-ws:')).length, 0)
  })
})
