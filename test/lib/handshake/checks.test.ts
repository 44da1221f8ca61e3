import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
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
