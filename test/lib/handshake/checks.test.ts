import assert from 'node:assert/strict'
import { once } from 'node:events'
import http, { type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import fastifyWebsocket from '@fastify/websocket'
import Fastify from 'fastify'
import { checkRequest, chooseProtocol, corsHeader, parseProtocols, supportedHeaders } from '../../../lib/handshake/checks'
import { acceptFor, handshakeLines, newKey, rawRequest, request } from '../../helpers/raw'
import { connect, nextMessage, startApp, type Started } from '../../helpers/server'

async function expectRefused (port: number, lines: string[], status: number, statusLine: string): Promise<Awaited<ReturnType<typeof rawRequest>>> {
  const res = await rawRequest(port, request(lines))
  res.socket.destroy()
  assert.equal(res.statusLine, statusLine)
  assert.equal(res.status, status)
  assert.equal(res.headers['sec-websocket-accept'], undefined, 'a refusal never carries an accept key')
  return res
}

describe('SPEC §2 handshake', () => {
  let s: Started
  before(async () => {
    s = await startApp({}, (app) => {
      app.get('/other', async () => ({ ok: true }))
    })
  })
  after(async () => { await s.app.close() })

  test('valid GET with Sec-WebSocket-Protocol: sip gets 101, echoes sip and the right accept key', async () => {
    const key = newKey()
    const res = await rawRequest(s.port, request(handshakeLines(s.port, { 'Sec-WebSocket-Key': key })))
    res.socket.destroy()
    assert.equal(res.statusLine, 'HTTP/1.1 101 Switching Protocols')
    assert.equal(res.headers.upgrade, 'websocket')
    assert.equal(res.headers.connection, 'Upgrade')
    assert.equal(res.headers['sec-websocket-accept'], acceptFor(key))
    assert.equal(res.headers['sec-websocket-protocol'], 'sip')
    assert.equal(res.headers['access-control-allow-origin'], undefined, 'corsMode 0 adds no CORS header')
  })

  test('the first offered sub-protocol that is enabled wins', async () => {
    for (const [offer, expected] of [['msrp, sip', 'msrp'], ['foo, sip', 'sip'], ['foo,msrp', 'msrp'], ['SIP', 'SIP']]) {
      const res = await rawRequest(s.port, request(handshakeLines(s.port, { 'Sec-WebSocket-Protocol': offer })))
      res.socket.destroy()
      assert.equal(res.status, 101, offer)
      assert.equal(res.headers['sec-websocket-protocol'], expected, offer)
    }
  })

  test('no sub-protocol, or none enabled: 400 naming what is supported', async () => {
    for (const offer of [null, 'foo', 'foo, bar', 'sip;x']) {
      const res = await expectRefused(s.port, handshakeLines(s.port, { 'Sec-WebSocket-Protocol': offer }), 400, 'HTTP/1.1 400 Bad Request')
      if (offer !== 'sip;x') assert.equal(res.headers['sec-websocket-protocol'], 'sip, msrp', String(offer))
      assert.match(res.body, offer === 'sip;x' ? /Invalid Sec-WebSocket-Protocol/ : /supported: sip, msrp/)
    }
  })

  test('missing or malformed key, missing version: 400', async () => {
    const cases: Array<Record<string, string | null>> = [
      { 'Sec-WebSocket-Key': null },
      { 'Sec-WebSocket-Key': 'abc' },
      { 'Sec-WebSocket-Key': Buffer.alloc(15).toString('base64') },
      { 'Sec-WebSocket-Key': Buffer.alloc(17).toString('base64') },
      { 'Sec-WebSocket-Key': 'AAAAAAAAAAAAAAAAAAAAAB==' },
      { 'Sec-WebSocket-Version': null }
    ]
    for (const extra of cases) {
      const res = await expectRefused(s.port, handshakeLines(s.port, extra), 400, 'HTTP/1.1 400 Bad Request')
      assert.match(res.body, /Sec-WebSocket-(Key|Version)/, JSON.stringify(extra))
    }
  })

  test('a duplicated Sec-WebSocket-Key is refused', async () => {
    const lines = handshakeLines(s.port)
    lines.push(`Sec-WebSocket-Key: ${newKey()}`)
    await expectRefused(s.port, lines, 400, 'HTTP/1.1 400 Bad Request')
  })

  test('version 8 (or anything but 13): 426 Upgrade Required with Sec-WebSocket-Version: 13', async () => {
    for (const version of ['8', '7', '14', 'x']) {
      const res = await expectRefused(s.port, handshakeLines(s.port, { 'Sec-WebSocket-Version': version }), 426, 'HTTP/1.1 426 Upgrade Required')
      assert.equal(res.headers['sec-websocket-version'], '13')
    }
  })

  test('POST is 405, HTTP/1.0 is 400, no Host is 400 (RFC 6455 §4.2.1), HTTP/2.0 is 505', async () => {
    const post = await expectRefused(s.port, handshakeLines(s.port, {}, 'POST / HTTP/1.1'), 405, 'HTTP/1.1 405 Method Not Allowed')
    assert.equal(post.headers.allow, 'GET')
    await expectRefused(s.port, handshakeLines(s.port, {}, 'GET / HTTP/1.0'), 400, 'HTTP/1.1 400 Bad Request')
    await expectRefused(s.port, handshakeLines(s.port, { Host: null }), 400, 'HTTP/1.1 400 Bad Request')
    // Node's HTTP/1 parser takes this request line; an upgrade in it is still not HTTP/1.1.
    await expectRefused(s.port, handshakeLines(s.port, {}, 'GET / HTTP/2.0'), 505, 'HTTP/1.1 505 HTTP Version Not Supported')
  })

  test('Upgrade other than websocket, or websocket among others, on a WebSocket path: 400 from our checks, counted', async () => {
    const before = s.app.wsStats().ws_failed_handshakes
    for (const upgrade of ['h2c', 'websocket, h2c', 'h2c, websocket']) {
      const res = await expectRefused(s.port, handshakeLines(s.port, { Upgrade: upgrade }), 400, 'HTTP/1.1 400 Bad Request')
      assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8', upgrade)
    }
    assert.equal(s.app.wsStats().ws_failed_handshakes, before + 3)
  })

  test('no Upgrade or no Connection: Upgrade, and no route of the app there: 400', async () => {
    for (const extra of [{ Upgrade: null }, { Connection: null }, { Connection: 'keep-alive' }] as Array<Record<string, string | null>>) {
      const res = await rawRequest(s.port, request(handshakeLines(s.port, extra)))
      res.socket.destroy()
      assert.equal(res.status, 400, JSON.stringify(extra))
      assert.match(res.body, /expects a WebSocket upgrade/)
    }
  })

  test('other paths and routes are untouched', async () => {
    const res = await rawRequest(s.port, request(handshakeLines(s.port, {}, 'GET /nope HTTP/1.1')))
    res.socket.destroy()
    assert.equal(res.status, 404)
    const other = await fetch(`http://127.0.0.1:${s.port}/other`)
    assert.equal(other.status, 200)
    assert.deepEqual(await other.json(), { ok: true })
  })

  test('a query string does not change the path', async () => {
    const res = await rawRequest(s.port, request(handshakeLines(s.port, {}, 'GET /?token=1 HTTP/1.1')))
    res.socket.destroy()
    assert.equal(res.status, 101)
  })

  test('the server still serves a valid handshake after every refusal, and counts the failures', async () => {
    const before = s.app.wsStats().ws_failed_handshakes
    await expectRefused(s.port, handshakeLines(s.port, { 'Sec-WebSocket-Version': '8' }), 426, 'HTTP/1.1 426 Upgrade Required')
    await expectRefused(s.port, handshakeLines(s.port, { 'Sec-WebSocket-Key': null }), 400, 'HTTP/1.1 400 Bad Request')
    assert.equal(s.app.wsStats().ws_failed_handshakes, before + 2)
    const ws = await connect(s.url)
    assert.equal(ws.protocol, 'sip')
    ws.terminate()
  })
})

describe('SPEC §2 with an app route on the WebSocket path', () => {
  test('a plain GET reaches the app route; upgrades still work', async () => {
    const s = await startApp({}, (app) => { app.get('/', async (_req, reply) => reply.type('text/html').send('<h1>page</h1>')) })
    try {
      const page = await fetch(`http://127.0.0.1:${s.port}/`)
      assert.equal(page.status, 200)
      assert.equal(await page.text(), '<h1>page</h1>')
      const ws = await connect(s.url)
      assert.equal(ws.protocol, 'sip')
      ws.terminate()
    } finally { await s.app.close() }
  })
})

describe('sub-protocols', () => {
  test('bitmap 1 enables sip only', async () => {
    const s = await startApp({ subProtocols: 1 })
    try {
      const res = await expectRefused(s.port, handshakeLines(s.port, { 'Sec-WebSocket-Protocol': 'msrp' }), 400, 'HTTP/1.1 400 Bad Request')
      assert.equal(res.headers['sec-websocket-protocol'], 'sip')
    } finally { await s.app.close() }
  })

  test('bitmap 2 enables msrp only; custom names are allowed', async () => {
    const s = await startApp({ subProtocols: 2 })
    const c = await startApp({ subProtocols: ['kmsg', 'json'] })
    try {
      assert.equal((await connect(s.url, ['sip', 'msrp'])).protocol, 'msrp')
      await expectRefused(s.port, handshakeLines(s.port, { 'Sec-WebSocket-Protocol': 'sip' }), 400, 'HTTP/1.1 400 Bad Request')
      assert.equal((await connect(c.url, ['json'])).protocol, 'json')
      assert.equal(c.app.wsStats().ws_json_successful_handshakes, 1)
    } finally { await s.app.close(); await c.app.close() }
  })

  test('an xhttp:request hook can choose among the offered ones', async () => {
    const s = await startApp({}, (app) => {
      app.addWsHook('xhttp:request', async (request) => { request.wsSubProtocol = 'msrp' })
    })
    try {
      const ws = await connect(s.url, ['sip', 'msrp'])
      assert.equal(ws.protocol, 'msrp')
      ws.terminate()
      // The hook asked for what the client did not offer: the server's mistake (SPEC §6), a 500.
      await expectRefused(s.port, handshakeLines(s.port, { 'Sec-WebSocket-Protocol': 'sip' }), 500, 'HTTP/1.1 500 Internal Server Error')
    } finally { await s.app.close() }
  })
})

describe('CORS modes', () => {
  for (const [mode, origin, expected] of [[0, 'https://a.example', undefined], [1, 'https://a.example', '*'], [2, 'https://a.example', 'https://a.example'], [2, null, undefined]] as const) {
    test(`corsMode ${mode}, Origin ${String(origin)}`, async () => {
      const s = await startApp({ corsMode: mode })
      try {
        const res = await rawRequest(s.port, request(handshakeLines(s.port, { Origin: origin })))
        res.socket.destroy()
        assert.equal(res.status, 101)
        assert.equal(res.headers['access-control-allow-origin'], expected)
      } finally { await s.app.close() }
    })
  }
})

describe('wsDisable / wsEnable', () => {
  test('503 while disabled; open connections keep working; enable restores', async () => {
    const s = await startApp({}, (app) => {
      app.addWsHook('websocket:message', (m) => { app.wsSend(m.id, `echo:${String(m.data)}`) })
    })
    try {
      const open = await connect(s.url)
      s.app.wsDisable()
      await expectRefused(s.port, handshakeLines(s.port), 503, 'HTTP/1.1 503 Service Unavailable')
      open.send('still here')
      assert.equal(String((await nextMessage(open)).data), 'echo:still here')
      s.app.wsEnable()
      const again = await connect(s.url)
      assert.equal(again.protocol, 'sip')
      open.terminate(); again.terminate()
    } finally { await s.app.close() }
  })
})

describe('paths', () => {
  test('a list of paths; each accepts, others do not', async () => {
    const s = await startApp({ path: ['/ws', '/sip'] })
    try {
      for (const path of ['/ws', '/sip']) {
        const ws = await connect(s.url + path)
        ws.terminate()
      }
      const res = await rawRequest(s.port, request(handshakeLines(s.port)))
      res.socket.destroy()
      assert.equal(res.status, 404)
    } finally { await s.app.close() }
  })
})

/**
 * A plain HTTP server that answers every request with the JSON of what `inspect` makes of it: requests as
 * Node parses them off a socket. With no 'upgrade' listener, Node hands an upgrade request to 'request'; a
 * request without Host reaches it too, as one does any server that does not refuse those itself.
 */
async function probeServer (inspect: (req: IncomingMessage) => unknown): Promise<{ port: number, ask: (lines: string[]) => Promise<unknown>, close: () => Promise<void> }> {
  const server = http.createServer({ requireHostHeader: false }, (req, res) => { res.end(JSON.stringify(inspect(req) ?? null)) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    port,
    ask: async (lines) => {
      const res = await rawRequest(port, request(lines))
      res.socket.destroy()
      assert.equal(res.status, 200, res.body)
      return JSON.parse(res.body)
    },
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
}

describe('checkRequest on requests Node parsed', () => {
  let probe: Awaited<ReturnType<typeof probeServer>>
  before(async () => { probe = await probeServer((req) => checkRequest(req)) })
  after(async () => { await probe.close() })
  const lines = (extra: Record<string, string | null> = {}, first?: string): string[] => handshakeLines(probe.port, extra, first)

  test('a valid handshake passes, however its tokens are spelled and listed', async () => {
    for (const extra of [
      {},
      { Upgrade: 'WebSocket' },
      { Upgrade: ' websocket ' },
      { Connection: 'keep-alive, Upgrade' },
      { Connection: 'UPGRADE' },
      { 'Sec-WebSocket-Version': ' 13' },
      { 'Sec-WebSocket-Protocol': null }
    ] as Array<Record<string, string | null>>) assert.equal(await probe.ask(lines(extra)), null, JSON.stringify(extra))
  })

  test('each refusal in full: status, headers and the message naming what was wrong', async () => {
    const cases: Array<[string[], unknown]> = [
      [lines({}, 'PUT / HTTP/1.1'), { status: 405, headers: { Allow: 'GET' }, message: 'The WebSocket opening handshake must be a GET, not PUT' }],
      [lines({}, 'GET / HTTP/1.0'), { status: 400, message: 'The WebSocket opening handshake needs HTTP/1.1 or later, not HTTP/1.0' }],
      [lines({}, 'GET / HTTP/2.0'), { status: 505, message: 'HTTP/2.0 in an HTTP/1 request line; the WebSocket opening handshake is HTTP/1.1' }],
      [lines({ Host: '' }), { status: 400, message: 'Missing Host header' }],
      [lines({ Host: null }), { status: 400, message: 'Missing Host header' }],
      [lines({ Upgrade: 'h2c' }), { status: 400, message: 'Missing "Upgrade: websocket" header' }],
      [lines({ Upgrade: 'websocket, h2c' }), { status: 400, message: 'Upgrade must be "websocket" alone, not "websocket, h2c"' }],
      [lines({ Connection: 'keep-alive' }), { status: 400, message: 'Missing "Connection: Upgrade" header' }],
      [lines({ Connection: 'upgrades' }), { status: 400, message: 'Missing "Connection: Upgrade" header' }],
      [lines({ 'Sec-WebSocket-Key': `${newKey()} ` + newKey() }), { status: 400, message: 'Missing or invalid Sec-WebSocket-Key: expected 16 bytes in base64' }],
      [lines({ 'Sec-WebSocket-Key': Buffer.alloc(16, 0xff).toString('base64url') + '==' }), { status: 400, message: 'Missing or invalid Sec-WebSocket-Key: expected 16 bytes in base64' }],
      [lines({ 'Sec-WebSocket-Version': '' }), { status: 400, headers: { 'Sec-WebSocket-Version': '13' }, message: 'Missing Sec-WebSocket-Version header' }],
      [lines({ 'Sec-WebSocket-Version': '13, 8' }), { status: 426, headers: { 'Sec-WebSocket-Version': '13' }, message: 'Unsupported WebSocket version 13, 8; this server speaks 13' }],
      [lines({ 'Sec-WebSocket-Version': '013' }), { status: 426, headers: { 'Sec-WebSocket-Version': '13' }, message: 'Unsupported WebSocket version 013; this server speaks 13' }]
    ]
    for (const [requestLines, refusal] of cases) assert.deepEqual(await probe.ask(requestLines), refusal, requestLines.join(' | '))
  })

  test('the checks run in the RFC\'s order: the first failing one is the answer', async () => {
    const everythingWrong = { Host: null, Upgrade: 'h2c', Connection: 'close', 'Sec-WebSocket-Key': 'x', 'Sec-WebSocket-Version': '8' }
    const answers: number[] = []
    for (const [extra, first] of [
      [everythingWrong, 'POST / HTTP/1.0'],
      [everythingWrong, 'GET / HTTP/1.0'],
      [everythingWrong, 'GET / HTTP/1.1'],
      [{ ...everythingWrong, Host: 'h' }, 'GET / HTTP/1.1'],
      [{ ...everythingWrong, Host: 'h', Upgrade: 'websocket' }, 'GET / HTTP/1.1'],
      [{ ...everythingWrong, Host: 'h', Upgrade: 'websocket', Connection: 'Upgrade' }, 'GET / HTTP/1.1'],
      [{ ...everythingWrong, Host: 'h', Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Key': newKey() }, 'GET / HTTP/1.1']
    ] as Array<[Record<string, string | null>, string]>) {
      const refusal = await probe.ask(lines(extra, first)) as { status: number, message: string }
      answers.push(refusal.status)
    }
    assert.deepEqual(answers, [405, 400, 400, 400, 400, 400, 426])
  })

  test('the headers checked may be given apart from the request\'s own', async () => {
    const checked = await probeServer((req) => checkRequest(req, { ...req.headers, 'sec-websocket-version': '8' }))
    try {
      assert.equal((await checked.ask(handshakeLines(checked.port)) as { status: number }).status, 426)
    } finally { await checked.close() }
  })
})

describe('checkRequest on an injectWS request', () => {
  test('no Host and the version as a number pass; the other checks still apply', async () => {
    const app = Fastify()
    await app.register(fastifyWebsocket)
    await app.ready()
    const captured: IncomingMessage[] = []
    app.server.prependListener('upgrade', (req: IncomingMessage) => { captured.push(req) })
    try {
      await app.injectWS('/', { headers: { 'sec-websocket-protocol': 'sip' } }).then((ws) => { ws.terminate() }, () => {})
      assert.equal(captured.length, 1)
      const [req] = captured
      assert.equal(req.headers.host, undefined)
      assert.equal(checkRequest(req), null)
      assert.deepEqual(checkRequest(req, { ...req.headers, 'sec-websocket-version': 8 as unknown as string }), { status: 426, headers: { 'Sec-WebSocket-Version': '13' }, message: 'Unsupported WebSocket version 8; this server speaks 13' })
      assert.equal((checkRequest(req, { ...req.headers, upgrade: undefined }))?.message, 'Missing "Upgrade: websocket" header')
    } finally { await app.close() }
  })
})

describe('parseProtocols', () => {
  test('the names in the client\'s order, trimmed; none when the header is absent', () => {
    assert.deepEqual(parseProtocols(undefined), [])
    assert.deepEqual(parseProtocols('sip'), ['sip'])
    assert.deepEqual(parseProtocols(' msrp ,sip,  kmsg'), ['msrp', 'sip', 'kmsg'])
    // Names are tokens, compared as sent: the server lower-cases when it chooses.
    assert.deepEqual(parseProtocols('sip, SIP'), ['sip', 'SIP'])
  })

  test('null for a header that is no list of distinct tokens', () => {
    for (const header of ['', ' ', 'sip,', ',sip', 'sip,,msrp', 'sip, sip', 'sip;x', 'sip msrp', 'si"p', 'sip/2.0', 'sïp']) {
      assert.equal(parseProtocols(header), null, JSON.stringify(header))
    }
  })

  test('repeated header lines reach it joined by Node, and are one list', async () => {
    const probe = await probeServer((req) => parseProtocols(req.headers['sec-websocket-protocol']))
    try {
      const base = handshakeLines(probe.port, { 'Sec-WebSocket-Protocol': null })
      assert.deepEqual(await probe.ask([...base, 'Sec-WebSocket-Protocol: msrp', 'Sec-WebSocket-Protocol: sip']), ['msrp', 'sip'])
      assert.equal(await probe.ask([...base, 'Sec-WebSocket-Protocol: sip', 'Sec-WebSocket-Protocol: sip']), null)
    } finally { await probe.close() }
  })
})

describe('chooseProtocol', () => {
  const ENABLED = ['sip', 'msrp']

  test('the first offered that is enabled, compared without case, answered in the client\'s spelling', () => {
    assert.deepEqual(chooseProtocol(['foo', 'MSRP', 'sip'], ENABLED), { protocol: 'MSRP' })
    assert.deepEqual(chooseProtocol(['Sip'], ENABLED), { protocol: 'Sip' })
  })

  test('none offered or none enabled: 400 with what is supported', () => {
    assert.deepEqual(chooseProtocol([], ENABLED), { status: 400, headers: supportedHeaders(ENABLED), message: 'Missing Sec-WebSocket-Protocol header; supported: sip, msrp' })
    assert.deepEqual(chooseProtocol(['foo', 'bar'], ENABLED), { status: 400, headers: supportedHeaders(ENABLED), message: 'None of the offered sub-protocols (foo, bar) is supported; supported: sip, msrp' })
  })

  test('a hook\'s choice wins over the client\'s order; one that cannot be answered is the server\'s 500', () => {
    assert.deepEqual(chooseProtocol(['sip', 'Msrp'], ENABLED, 'MSRP'), { protocol: 'Msrp' })
    assert.deepEqual(chooseProtocol(['sip', 'kmsg'], ENABLED, 'kmsg'), { status: 500, message: 'An xhttp:request hook set request.wsSubProtocol to "kmsg", which is not enabled (subProtocols: sip, msrp)' })
    assert.deepEqual(chooseProtocol(['sip'], ENABLED, 'msrp'), { status: 500, message: 'An xhttp:request hook set request.wsSubProtocol to "msrp", which the client did not offer (offered: sip)' })
    assert.deepEqual(chooseProtocol([], ENABLED, 'sip'), { status: 500, message: 'An xhttp:request hook set request.wsSubProtocol to "sip", which the client did not offer (offered: none)' })
  })
})

describe('corsHeader and supportedHeaders', () => {
  test('corsHeader: mode 1 any origin, mode 2 the request\'s own when it sent one, mode 0 none', () => {
    assert.equal(corsHeader(0, 'https://a.example'), null)
    assert.equal(corsHeader(1, undefined), 'Access-Control-Allow-Origin: *')
    assert.equal(corsHeader(1, 'https://a.example'), 'Access-Control-Allow-Origin: *')
    assert.equal(corsHeader(2, 'https://a.example'), 'Access-Control-Allow-Origin: https://a.example')
    assert.equal(corsHeader(2, 'null'), 'Access-Control-Allow-Origin: null')
    assert.equal(corsHeader(2, ''), null)
    assert.equal(corsHeader(2, undefined), null)
  })

  test('supportedHeaders: the enabled sub-protocols in order, and the one version spoken', () => {
    assert.deepEqual(supportedHeaders(['sip', 'msrp', 'kmsg']), { 'Sec-WebSocket-Protocol': 'sip, msrp, kmsg', 'Sec-WebSocket-Version': '13' })
  })
})
