import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import type WebSocket from 'ws'
import { canonicalOrigin, preflight, rpcAccessHook, type RpcAccessOptions } from '../../../lib/admin/rpc-access'
import { handshakeStatus } from '../../e2e/helpers'
import { httpRequest, type RawResponse } from '../../helpers/raw'
import { connect, loggedApp, startApp, type Started } from '../../helpers/server'

const call = (method: string, params?: unknown[], id: unknown = 1): Record<string, unknown> => ({ jsonrpc: '2.0', method, ...(params !== undefined ? { params } : {}), id })

/** Every admin method, each as a web page would try it on connection `id`, and all of them as one batch. */
function adminCalls (id: number): Array<[string, string]> {
  const calls = [call('ws.dump'), call('ws.close', [id]), call('ws.ping', [id]), call('ws.pong', [id]), call('ws.disable'), call('ws.enable'), call('stats.get_statistics', ['all'])]
  return [...calls.map((c): [string, string] => [String(c.method), JSON.stringify(c)]), ['batch', JSON.stringify(calls)]]
}

// What a page can send without a CORS preflight (fetch or a form), and what scripts send.
const CONTENT_TYPES = ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json']

const post = async (port: number, headers: Record<string, string | null>, body: string): Promise<RawResponse> => await httpRequest(port, 'POST', '/RPC', headers, body)

function refusedFor (res: RawResponse, reason: string, what: string): void {
  assert.equal(res.status, 403, what)
  assert.match(res.headers['content-type'], /^application\/json/, what)
  assert.deepEqual(JSON.parse(res.body), { jsonrpc: '2.0', error: { code: 403, message: reason }, id: null }, what)
  assert.equal(res.headers['access-control-allow-origin'], undefined, what)
}

/** A client whose Pings, Pongs and close are counted: any of them means an admin call ran. */
async function watchedClient (url: string): Promise<{ ws: WebSocket, seen: string[] }> {
  const ws = await connect(url)
  const seen: string[] = []
  ws.on('ping', () => { seen.push('ping') })
  ws.on('pong', () => { seen.push('pong') })
  ws.on('close', () => { seen.push('close') })
  return { ws, seen }
}

describe('RPC access: requests a web page made', () => {
  let s: Started
  let hookRuns = 0
  before(async () => {
    s = await startApp({ rpc: { path: '/RPC' } }, (app) => { app.addWsHook('rpc:request', () => { hookRuns++ }) })
  })
  after(async () => { await s.app.close() })

  test('an unlisted Origin is refused with 403 before any method or rpc:request hook runs: every admin method, a batch, every simple content type', async (t) => {
    const { ws, seen } = await watchedClient(s.url)
    const id = s.app.wsDump().connections[0].id
    const statsBefore = s.app.wsStats()
    hookRuns = 0
    // 'null' is what sandboxed frames and file: pages send; the endpoint's own origin is a page on the edge.
    const origins = ['https://evil.example', 'null', `http://127.0.0.1:${s.port}`, `http://evil.example:${s.port}`]
    let requests = 0
    for (const origin of origins) {
      for (const [method, body] of adminCalls(id)) {
        for (const type of CONTENT_TYPES) {
          refusedFor(await post(s.port, { Origin: origin, 'Content-Type': type }, body), 'Origin not allowed', `${method} from ${origin} as ${type}`)
          requests++
        }
      }
    }
    t.diagnostic(`${requests} requests refused`)
    assert.equal(hookRuns, 0, 'no rpc:request hook ran, so no handler did')
    assert.deepEqual(seen, [], 'no Ping, Pong or Close reached the client')
    assert.equal(s.app.wsConnection(id)?.state, 'OPEN')
    assert.deepEqual(s.app.wsStats(), statsBefore, 'nothing sent, closed or counted')
    assert.equal((await handshakeStatus(s.url)).status, 101, 'the service was not disabled')
    ws.terminate()
  })

  test('Sec-Fetch-Site other than "none" without a listed Origin is refused; "none" (typed by the user) is served', async () => {
    hookRuns = 0
    const disable = JSON.stringify(call('ws.disable'))
    for (const site of ['cross-site', 'same-site', 'same-origin']) {
      refusedFor(await post(s.port, { 'Sec-Fetch-Site': site, 'Content-Type': 'text/plain' }, disable), 'Origin not allowed', site)
    }
    assert.equal(hookRuns, 0)
    assert.equal((await handshakeStatus(s.url)).status, 101)
    const typed = await post(s.port, { 'Sec-Fetch-Site': 'none' }, JSON.stringify(call('ws.dump')))
    assert.equal(typed.status, 200)
    assert.equal(hookRuns, 1)
  })

  test('without an Origin, scripts are served as before whatever the content type: ws.dump works and a batch runs', async () => {
    const { ws, seen } = await watchedClient(s.url)
    const id = s.app.wsDump().connections[0].id
    for (const type of [null, ...CONTENT_TYPES]) {
      const dump = await post(s.port, { 'Content-Type': type }, JSON.stringify(call('ws.dump')))
      assert.equal(dump.status, 200, String(type))
      assert.equal(JSON.parse(dump.body).result.info.wscounter, 1, String(type))
    }
    // A DNS-rebinding Host alone changes nothing while rpc.allowedHosts is left unset (any Host).
    const pinged = new Promise((resolve) => ws.once('ping', resolve))
    const batch = await post(s.port, { 'Content-Type': 'text/plain', Host: 'evil.example' }, JSON.stringify([call('ws.ping', [id], 1), call('ws.disable', [], 2)]))
    assert.equal(batch.status, 200)
    assert.deepEqual(JSON.parse(batch.body), [{ jsonrpc: '2.0', result: {}, id: 1 }, { jsonrpc: '2.0', result: {}, id: 2 }])
    await pinged
    assert.equal((await handshakeStatus(s.url)).status, 503, 'the batch\'s ws.disable ran')
    assert.equal((await post(s.port, {}, JSON.stringify(call('ws.enable')))).status, 200)
    assert.equal((await handshakeStatus(s.url)).status, 101)
    assert.deepEqual(seen, ['ping'])
    ws.terminate()
  })

  test('no CORS preflight is answered while no origin is listed', async () => {
    const preflight = await httpRequest(s.port, 'OPTIONS', '/RPC', { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' })
    assert.equal(preflight.status, 404)
    assert.deepEqual(preflight.headerLines.filter(([name]) => name.startsWith('access-control-')), [])
  })
})

describe('rpc.allowedOrigins', () => {
  const ADMIN = 'https://admin.example.com'
  let s: Started
  before(async () => {
    s = await startApp({ rpc: { path: '/RPC', allowedOrigins: ['HTTPS://Admin.Example.com:443/'] } }, (app) => {
      app.addWsHook('rpc:request', async (request, reply) => {
        if (request.headers.authorization !== 'Bearer admin') return await reply.code(401).send({ error: 'unauthorized' })
      })
    })
  })
  after(async () => { await s.app.close() })

  test('a preflight from a listed origin is answered (the option is normalized as browsers write origins)', async () => {
    const res = await httpRequest(s.port, 'OPTIONS', '/RPC', { Origin: ADMIN, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type' })
    assert.equal(res.status, 204)
    assert.equal(res.headers['access-control-allow-origin'], ADMIN)
    assert.equal(res.headers['access-control-allow-methods'], 'POST')
    assert.deepEqual(res.headers['access-control-allow-headers'].toLowerCase().split(/, */).sort(), ['authorization', 'content-type'])
    assert.equal(res.headers.vary, 'Origin')
  })

  test('a POST from a listed origin is served with Access-Control-Allow-Origin, and so is its hook\'s refusal', async () => {
    const ok = await post(s.port, { Origin: ADMIN, 'Sec-Fetch-Site': 'cross-site', 'Content-Type': 'application/json', Authorization: 'Bearer admin' }, JSON.stringify(call('ws.dump')))
    assert.equal(ok.status, 200)
    assert.deepEqual(JSON.parse(ok.body).result.info, { wscounter: 0, truncated: 'no' })
    assert.equal(ok.headers['access-control-allow-origin'], ADMIN)
    assert.equal(ok.headers.vary, 'Origin')
    const noToken = await post(s.port, { Origin: ADMIN }, JSON.stringify(call('ws.dump')))
    assert.equal(noToken.status, 401)
    assert.equal(noToken.headers['access-control-allow-origin'], ADMIN, 'the admin page can read why it was refused')
  })

  test('other origins are still refused, preflight included; scripts without Origin get no CORS header', async () => {
    for (const origin of ['https://evil.example', 'http://admin.example.com', 'https://admin.example.com:8443', 'https://admin.example.com.evil.example', `${ADMIN}, https://evil.example`]) {
      const preflight = await httpRequest(s.port, 'OPTIONS', '/RPC', { Origin: origin, 'Access-Control-Request-Method': 'POST' })
      refusedFor(preflight, 'Origin not allowed', `preflight from ${origin}`)
      refusedFor(await post(s.port, { Origin: origin, Authorization: 'Bearer admin' }, JSON.stringify(call('ws.disable'))), 'Origin not allowed', origin)
    }
    assert.equal((await handshakeStatus(s.url)).status, 101)
    const script = await post(s.port, { Authorization: 'Bearer admin' }, JSON.stringify(call('ws.dump')))
    assert.equal(script.status, 200)
    assert.equal(script.headers['access-control-allow-origin'], undefined)
  })
})

describe('rpc.allowedHosts', () => {
  let s: Started
  before(async () => { s = await startApp({ rpc: { path: '/RPC', allowedHosts: ['127.0.0.1', 'Admin.Example.com:8443', '[::1]'] } }) })
  after(async () => { await s.app.close() })

  test('a listed name matches on any port, a listed name:port only on that port, case-insensitively; any other Host is refused with 403', async () => {
    const dump = JSON.stringify(call('ws.dump'))
    for (const host of [`127.0.0.1:${s.port}`, '127.0.0.1', 'ADMIN.example.COM:8443', '[::1]:8080', '[::1]']) {
      assert.equal((await post(s.port, { Host: host }, dump)).status, 200, host)
    }
    const disable = JSON.stringify(call('ws.disable'))
    for (const host of ['evil.example', `evil.example:${s.port}`, 'admin.example.com', 'admin.example.com:443', '127.0.0.1.evil.example', '[::2]:8080', 'localhost']) {
      refusedFor(await post(s.port, { Host: host }, disable), 'Host not allowed', host)
    }
    // HTTP/1.0 needs no Host; with a list, no Host is no match.
    refusedFor(await httpRequest(s.port, 'POST', '/RPC', { Host: null }, disable, '1.0'), 'Host not allowed', 'no Host')
    assert.equal((await handshakeStatus(s.url)).status, 101, 'no ws.disable ran')
  })
})

describe('canonicalOrigin', () => {
  test('serializes an origin as browsers send it: lower case, default port left out, IDN in punycode', () => {
    for (const [text, origin] of [
      ['HTTPS://Admin.Example.com:443/', 'https://admin.example.com'],
      ['HTTP://A.EXAMPLE', 'http://a.example'],
      ['http://a.example:80', 'http://a.example'],
      ['http://a.example:443', 'http://a.example:443'],
      ['https://a.example:80', 'https://a.example:80'],
      ['http://a.example:8080/', 'http://a.example:8080'],
      ['https://[::1]:443', 'https://[::1]'],
      ['https://[0:0:0:0:0:0:0:1]:8443/', 'https://[::1]:8443'],
      ['http://bücher.example', 'http://xn--bcher-kva.example'],
      ['http://127.1', 'http://127.0.0.1']
    ]) assert.equal(canonicalOrigin(text), origin, text)
  })

  test('null for anything that is not an http(s) origin with nothing after the authority', () => {
    for (const text of [
      '', 'null', 'not a url', 'http://', 'http:a.example', 'http:///a.example', ' http://a.example',
      'ws://a.example', 'wss://a.example', 'ftp://a.example', 'file:///etc/passwd', 'data:text/html,x', 'javascript:alert(1)',
      'http://user@a.example', 'http://user:pw@a.example',
      'http://a.example/path', 'http://a.example//', 'http://a.example?q=1', 'http://a.example/?', 'http://a.example#', 'http://a.example/#top',
      'http://*.example.com', 'https://*', 'http://a.example:99999'
    ]) assert.equal(canonicalOrigin(text), null, JSON.stringify(text))
  })
})

describe('rpcAccessHook and preflight on a Fastify app of their own', () => {
  /** An app whose POST /rpc answers "ran" behind the hook, and whose OPTIONS /rpc is the preflight. */
  async function guarded (options: RpcAccessOptions): Promise<{ app: FastifyInstance, port: number, ran: () => number, warnings: () => Array<Record<string, unknown>> }> {
    const log = loggedApp('warn')
    const app = Fastify(log.fastifyOptions)
    let runs = 0
    app.addHook('onRequest', rpcAccessHook(options))
    app.post('/rpc', async () => { runs++; return 'ran' })
    app.options('/rpc', preflight)
    await app.listen({ host: '127.0.0.1', port: 0 })
    const port = (app.server.address() as { port: number }).port
    return { app, port, ran: () => runs, warnings: () => log.entries.filter((e) => e.level === 40) }
  }

  test('a script (no Origin, no Sec-Fetch-Site other than "none") passes to the route untouched: no CORS header, no Vary while nothing is listed', async (t) => {
    const g = await guarded({ allowedOrigins: [] })
    t.after(async () => { await g.app.close() })
    for (const headers of [{}, { 'Sec-Fetch-Site': 'none' }] as Array<Record<string, string>>) {
      const res = await httpRequest(g.port, 'POST', '/rpc', headers)
      assert.deepEqual([res.status, res.body], [200, 'ran'])
      assert.deepEqual(res.headerLines.filter(([name]) => name === 'vary' || name.startsWith('access-control-')), [])
    }
    assert.equal(g.ran(), 2)
    assert.deepEqual(g.warnings(), [])
  })

  test('each refusal logs one warning naming its reason with the request\'s Host, Origin and Sec-Fetch-Site; the route never runs', async (t) => {
    const g = await guarded({ allowedOrigins: ['https://admin.example'], allowedHosts: ['edge.example'] })
    t.after(async () => { await g.app.close() })
    const cases: Array<[Record<string, string>, string, Record<string, unknown>]> = [
      [{ Host: 'evil.example', Origin: 'https://admin.example' }, 'Host not allowed', { host: 'evil.example', origin: 'https://admin.example' }],
      [{ Host: 'edge.example', Origin: 'https://evil.example' }, 'Origin not allowed', { host: 'edge.example', origin: 'https://evil.example' }],
      [{ Host: 'edge.example', 'Sec-Fetch-Site': 'same-site' }, 'Origin not allowed', { host: 'edge.example', secFetchSite: 'same-site' }],
      [{ Host: 'edge.example', Origin: 'https://ADMIN.example' }, 'Origin not allowed', { origin: 'https://ADMIN.example' }]
    ]
    for (const [headers, reason, fields] of cases) {
      const before = g.warnings().length
      const res = await httpRequest(g.port, 'POST', '/rpc', headers)
      assert.equal(res.status, 403)
      assert.deepEqual(JSON.parse(res.body), { jsonrpc: '2.0', error: { code: 403, message: reason }, id: null })
      const logged = g.warnings().slice(before)
      assert.equal(logged.length, 1, JSON.stringify(headers))
      assert.equal(logged[0].msg, `fastify-sip-ws: RPC request refused: ${reason}`)
      for (const [name, value] of Object.entries(fields)) assert.equal(logged[0][name], value, `${name} of ${JSON.stringify(headers)}`)
    }
    assert.equal(g.ran(), 0)
  })

  test('the Host is checked before the Origin: a listed origin on a wrong Host is refused for its Host', async (t) => {
    const g = await guarded({ allowedOrigins: ['https://admin.example'], allowedHosts: ['edge.example:8443'] })
    t.after(async () => { await g.app.close() })
    const wrongHost = await httpRequest(g.port, 'POST', '/rpc', { Host: 'edge.example:8444', Origin: 'https://admin.example' })
    assert.equal(JSON.parse(wrongHost.body).error.message, 'Host not allowed')
    assert.equal(wrongHost.headers['access-control-allow-origin'], undefined)
    const ok = await httpRequest(g.port, 'POST', '/rpc', { Host: 'EDGE.example:8443', Origin: 'https://admin.example' })
    assert.deepEqual([ok.status, ok.headers['access-control-allow-origin'], ok.headers.vary], [200, 'https://admin.example', 'Origin'])
    assert.equal(g.ran(), 1)
  })

  test('an empty allowedHosts lets no Host in; allowedHosts left out lets any in', async (t) => {
    const none = await guarded({ allowedOrigins: [], allowedHosts: [] })
    const any = await guarded({ allowedOrigins: [] })
    t.after(async () => { await none.app.close(); await any.app.close() })
    assert.equal((await httpRequest(none.port, 'POST', '/rpc', { Host: `127.0.0.1:${none.port}` })).status, 403)
    for (const host of ['evil.example', '[::1]:1', `127.0.0.1:${any.port}`]) assert.equal((await httpRequest(any.port, 'POST', '/rpc', { Host: host })).status, 200, host)
  })

  test('preflight: with a listed Origin, the CORS answer; with no Origin, 204 naming the methods allowed', async (t) => {
    const g = await guarded({ allowedOrigins: ['https://admin.example'] })
    t.after(async () => { await g.app.close() })
    const cors = await httpRequest(g.port, 'OPTIONS', '/rpc', { Origin: 'https://admin.example', 'Access-Control-Request-Method': 'POST' })
    assert.equal(cors.status, 204)
    assert.deepEqual([cors.headers['access-control-allow-origin'], cors.headers['access-control-allow-methods'], cors.headers['access-control-max-age']], ['https://admin.example', 'POST', '600'])
    assert.equal(cors.headers.allow, undefined)
    const plain = await httpRequest(g.port, 'OPTIONS', '/rpc')
    assert.equal(plain.status, 204)
    assert.equal(plain.headers.allow, 'POST, OPTIONS')
    assert.deepEqual(plain.headerLines.filter(([name]) => name.startsWith('access-control-')), [])
    assert.equal(plain.headers.vary, 'Origin', 'the answer still depends on Origin')
  })
})
