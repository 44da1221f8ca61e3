// The Fastify ecosystem beside the plugin, each plugin real (from npm) and every request over a real socket:
// each must do to an upgrade what it does to a route of the same app.
import assert from 'node:assert/strict'
import type { IncomingHttpHeaders } from 'node:http'
import { describe, test } from 'node:test'
import fastifyAuth from '@fastify/auth'
import fastifyCookie from '@fastify/cookie'
import fastifyCors from '@fastify/cors'
import fastifyHelmet from '@fastify/helmet'
import fastifyJwt from '@fastify/jwt'
import fastifyRateLimit from '@fastify/rate-limit'
import fastifyUnderPressure from '@fastify/under-pressure'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import WebSocket from 'ws'
import sipWs, { type SipWsOptions } from '../../lib'
import { httpRequest } from '../helpers/raw'

interface Attempt {
  status: number
  headers: IncomingHttpHeaders
}

/** One upgrade attempt: the 101's headers (the socket then closed) or the refusal's status and headers. */
async function upgrade (url: string, protocols: string[] = ['sip'], headers: Record<string, string> = {}): Promise<Attempt> {
  const ws = new WebSocket(url, protocols, { headers })
  return await new Promise((resolve, reject) => {
    let seen: IncomingHttpHeaders = {}
    ws.on('upgrade', (res) => { seen = res.headers })
    ws.on('open', () => { resolve({ status: 101, headers: seen }); ws.terminate() })
    ws.on('unexpected-response', (_req, res) => { resolve({ status: res.statusCode ?? 0, headers: res.headers }); res.resume(); ws.terminate() })
    ws.on('error', reject)
  })
}

/** An app with `register` run before the plugin (as an ecosystem plugin must be, to see its routes), an HTTP route, listening. */
async function appWith (register: (app: FastifyInstance) => Promise<void>, options: SipWsOptions = {}, after?: (app: FastifyInstance) => void): Promise<{ app: FastifyInstance, port: number, url: string }> {
  const app = Fastify()
  await register(app)
  await app.register(sipWs, { path: ['/ws'], subProtocols: ['sip'], ...options })
  app.get('/api', async () => ({ ok: true }))
  after?.(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as { port: number }
  return { app, port, url: `ws://127.0.0.1:${port}/ws` }
}

async function inTurn<T> (n: number, fn: () => Promise<T>): Promise<T[]> {
  const out: T[] = []
  for (let i = 0; i < n; i++) out.push(await fn())
  return out
}

describe('@fastify/rate-limit', () => {
  test('max 3: 3 of 5 upgrades open, 2 get 429, as 3 of 5 GETs of a route pass; the 101 carries its headers', async (t) => {
    const limited = async (): Promise<{ app: FastifyInstance, port: number, url: string }> => await appWith(async (app) => { await app.register(fastifyRateLimit, { max: 3, timeWindow: 60_000 }) })
    const { app, url } = await limited()
    const other = await limited()
    t.after(async () => { await app.close(); await other.app.close() })
    const upgrades = await inTurn(5, async () => await upgrade(url))
    const gets = await inTurn(5, async () => (await httpRequest(other.port, 'GET', '/api')).status)
    assert.deepEqual(upgrades.map((a) => a.status), [101, 101, 101, 429, 429])
    assert.deepEqual(gets, [200, 200, 200, 429, 429])
    assert.deepEqual(upgrades.map((a) => a.headers['x-ratelimit-remaining']), ['2', '1', '0', '0', '0'])
    assert.equal(upgrades[0].headers['x-ratelimit-limit'], '3')
    assert.ok(Number(upgrades[0].headers['x-ratelimit-reset']) > 0)
    assert.ok(Number(upgrades[3].headers['retry-after']) > 0)
    assert.equal(app.wsStats().ws_successful_handshakes, 3)
  })

  test('global: false and the `route` option\'s config.rateLimit: the WebSocket paths alone are limited', async (t) => {
    const { app, port, url } = await appWith(async (app) => { await app.register(fastifyRateLimit, { global: false }) }, {
      route: { config: { rateLimit: { max: 2, timeWindow: 60_000 } } }
    })
    t.after(async () => { await app.close() })
    assert.deepEqual((await inTurn(4, async () => await upgrade(url))).map((a) => a.status), [101, 101, 429, 429])
    assert.deepEqual(await inTurn(4, async () => (await httpRequest(port, 'GET', '/api')).status), [200, 200, 200, 200])
  })
})

const SECRET = 'a secret long enough for HS256, for tests only'

/** The recipe's token finder: `?token=`, a `jwt.<token>` entry among the offered sub-protocols, or a cookie. */
function extractToken (request: FastifyRequest): string | undefined {
  const query = request.query as { token?: string }
  if (query.token !== undefined) return query.token
  const offered = request.headers['sec-websocket-protocol']?.split(',').map((p) => p.trim()) ?? []
  const entry = offered.find((p) => p.startsWith('jwt.'))
  if (entry !== undefined) return entry.slice(4)
  return request.cookies?.token
}

/** @fastify/cookie, @fastify/jwt (with the recipe's token finder) and @fastify/auth, registered before the plugin. */
async function registerAuth (app: FastifyInstance): Promise<void> {
  await app.register(fastifyCookie)
  await app.register(fastifyJwt, { secret: SECRET, verify: { extractToken } })
  await app.register(fastifyAuth)
}

/** app.auth([jwt, API key]) as an xhttp:request hook, and as the preHandler of an HTTP route. */
async function authApp (): Promise<{ app: FastifyInstance, port: number, url: string, token: string, users: unknown[] }> {
  const users: unknown[] = []
  const verifyJwt = async (request: FastifyRequest): Promise<void> => { await request.jwtVerify() }
  const verifyKey = (request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void): void => {
    done(request.headers['x-api-key'] === 'k3y' ? undefined : new Error('no API key'))
  }
  const { app, port, url } = await appWith(registerAuth, {}, (app) => {
    app.addWsHook('xhttp:request', app.auth([verifyJwt, verifyKey]))
    app.addWsHook('websocket:open', (ev) => { users.push(ev.request.user) })
    app.get('/private', { preHandler: app.auth([verifyJwt, verifyKey]) }, async () => 'private')
  })
  return { app, port, url, token: app.jwt.sign({ sub: 'alice' }), users }
}

describe('@fastify/jwt and @fastify/auth', () => {
  test('app.auth([...]) as an xhttp:request hook: a token in the query, a sub-protocol or a cookie, or an API key, opens; none gets 401 as the route does', async (t) => {
    const { app, port, url, token, users } = await authApp()
    t.after(async () => { await app.close() })
    const opened = [
      await upgrade(`${url}?token=${token}`),
      await upgrade(url, ['sip', `jwt.${token}`]),
      await upgrade(url, ['sip'], { Cookie: `token=${token}` }),
      await upgrade(url, ['sip'], { 'X-Api-Key': 'k3y' })
    ]
    assert.deepEqual(opened.map((a) => a.status), [101, 101, 101, 101])
    assert.equal(opened[1].headers['sec-websocket-protocol'], 'sip', 'the token entry is never chosen')
    const refused = [await upgrade(url), await upgrade(`${url}?token=forged.${token.slice(6)}`), await upgrade(url, ['sip'], { Cookie: 'token=nope' })]
    assert.deepEqual(refused.map((a) => a.status), [401, 401, 401])
    assert.deepEqual([(await httpRequest(port, 'GET', `/private?token=${token}`)).status, (await httpRequest(port, 'GET', '/private')).status], [200, 401])
    assert.deepEqual(users.map((u) => (u as { sub?: string } | undefined)?.sub), ['alice', 'alice', 'alice', undefined], 'request.user reaches websocket:open')
  })

  test('app.auth([...]) as the WebSocket routes\' preHandler (the `route` option): the same answers', async (t) => {
    const app = Fastify()
    t.after(async () => { await app.close() })
    await registerAuth(app)
    const verify = app.auth([async (request) => { await request.jwtVerify() }])
    await app.register(sipWs, { path: ['/ws'], subProtocols: ['sip'], route: { preHandler: verify } })
    app.get('/private', { preHandler: verify }, async () => 'private')
    await app.listen({ host: '127.0.0.1', port: 0 })
    const url = `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/ws`
    const token = app.jwt.sign({ sub: 'bob' })
    const port = (app.server.address() as { port: number }).port
    const route = [(await httpRequest(port, 'GET', `/private?token=${token}`)).status, (await httpRequest(port, 'GET', '/private')).status]
    assert.deepEqual(route, [200, 400], 'no token: @fastify/jwt\'s own 400')
    assert.deepEqual([(await upgrade(`${url}?token=${token}`)).status, (await upgrade(url)).status], [101, route[1]])
  })
})

describe('@fastify/helmet', () => {
  test('the 101 and a refusal carry the headers a route\'s response gets', async (t) => {
    const { app, port, url } = await appWith(async (app) => { await app.register(fastifyHelmet) })
    t.after(async () => { await app.close() })
    const route = await httpRequest(port, 'GET', '/api')
    const helmetNames = ['content-security-policy', 'cross-origin-opener-policy', 'strict-transport-security', 'x-content-type-options', 'x-frame-options']
    for (const name of helmetNames) assert.ok(route.headers[name] !== undefined, `the route has ${name}`)
    const opened = await upgrade(url)
    const refused = await upgrade(url, ['msrp'])
    assert.deepEqual([opened.status, refused.status], [101, 400])
    for (const name of helmetNames) {
      assert.equal(opened.headers[name], route.headers[name], `101 ${name}`)
      assert.equal(refused.headers[name], route.headers[name], `400 ${name}`)
    }
    assert.equal(opened.headers['content-type'], undefined, 'nothing that describes a body')
  })
})

describe('@fastify/under-pressure', () => {
  test('unhealthy: upgrades get 503 as the route does; healthy again: they open', async (t) => {
    let healthy = true
    const { app, port, url } = await appWith(async (app) => {
      await app.register(fastifyUnderPressure, { healthCheck: async () => healthy, healthCheckInterval: 20 })
    })
    t.after(async () => { await app.close() })
    assert.equal((await upgrade(url)).status, 101)
    healthy = false
    // The health check runs every 20 ms: within 200 rounds (at least 4 s) it has seen the change.
    let status = 0
    for (let i = 0; i < 200 && status !== 503; i++) status = (await httpRequest(port, 'GET', '/api')).status
    assert.equal(status, 503, 'the route reports pressure')
    assert.equal((await upgrade(url)).status, 503)
    healthy = true
    for (let i = 0; i < 200 && status !== 200; i++) status = (await httpRequest(port, 'GET', '/api')).status
    assert.equal(status, 200)
    assert.equal((await upgrade(url)).status, 101)
  })
})

describe('@fastify/cors', () => {
  test('the 101 carries its Access-Control-Allow-Origin as a route\'s response does; with corsMode the plugin\'s alone', async (t) => {
    const { app, port, url } = await appWith(async (app) => { await app.register(fastifyCors, { origin: 'https://phone.example.com' }) })
    t.after(async () => { await app.close() })
    const route = await httpRequest(port, 'GET', '/api', { Origin: 'https://phone.example.com' })
    const opened = await upgrade(url, ['sip'], { Origin: 'https://phone.example.com' })
    assert.equal(route.headers['access-control-allow-origin'], 'https://phone.example.com')
    assert.equal(opened.headers['access-control-allow-origin'], route.headers['access-control-allow-origin'])
    const mode = await appWith(async (app) => { await app.register(fastifyCors, { origin: '*' }) }, { corsMode: 2 })
    t.after(async () => { await mode.app.close() })
    const res = await httpRequest(mode.port, 'GET', '/ws', { Origin: 'https://a.example', Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Protocol': 'sip' })
    assert.equal(res.status, 101)
    assert.deepEqual(res.headerLines.filter(([name]) => name === 'access-control-allow-origin'), [['access-control-allow-origin', 'https://a.example']])
  })

  test('/RPC preflights are the endpoint\'s own: a listed origin gets its answer, another 403 (404 while none is listed) with no CORS header, whatever @fastify/cors would echo', async (t) => {
    const listed = 'https://admin.example.com'
    const preflight = { 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' }
    for (const allowedOrigins of [[listed], []]) {
      const { app, port } = await appWith(async (app) => { await app.register(fastifyCors, { origin: true }) }, { rpc: { allowedOrigins } })
      t.after(async () => { await app.close() })
      const api = await httpRequest(port, 'OPTIONS', '/api', { Origin: 'https://evil.example', ...preflight })
      assert.equal(api.headers['access-control-allow-origin'], 'https://evil.example', '@fastify/cors answers for the app\'s routes')
      // Listed origins: the endpoint's Origin check; none: the app's 404, as without @fastify/cors.
      const refusal = allowedOrigins.length > 0 ? 403 : 404
      const evil = await httpRequest(port, 'OPTIONS', '/RPC', { Origin: 'https://evil.example', ...preflight })
      assert.deepEqual([evil.status, evil.headers['access-control-allow-origin']], [refusal, undefined], `evil, allowed ${allowedOrigins.join()}`)
      const own = await httpRequest(port, 'OPTIONS', '/RPC', { Origin: listed, ...preflight })
      if (allowedOrigins.length > 0) {
        assert.deepEqual([own.status, own.headers['access-control-allow-origin'], own.headers['access-control-allow-methods']], [204, listed, 'POST'])
      } else {
        assert.deepEqual([own.status, own.headers['access-control-allow-origin']], [404, undefined])
      }
      assert.equal((await httpRequest(port, 'OPTIONS', '/RPC')).status, allowedOrigins.length > 0 ? 204 : 404, 'no Origin: answered only when origins are listed')
      const post = await httpRequest(port, 'POST', '/RPC', { Origin: 'https://evil.example', 'Content-Type': 'text/plain' }, '{"jsonrpc":"2.0","method":"ws.dump","id":1}')
      assert.deepEqual([post.status, post.headers['access-control-allow-origin']], [403, undefined])
    }
  })
})
