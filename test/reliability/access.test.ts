import assert from 'node:assert/strict'
import { EventEmitter, once } from 'node:events'
import { describe, test } from 'node:test'
import type WebSocket from 'ws'
import { frame } from '../helpers/frames'
import { runConcurrently, within } from '../helpers/pool'
import { Rng, fuzzSeed } from '../helpers/random'
import { handshakeLines, rawRequest, request } from '../helpers/raw'
import { connect, startApp } from '../helpers/server'

const SEED = fuzzSeed()

// The README's xhttp:request example, as written there: an Origin allow-list (clients that send no Origin
// are not browsers and pass on to the token check) and a token in the query string checked asynchronously.
const ALLOWED = ['https://phone.example.com']
const TOKENS = new Set(['t0k3n-alice', 't0k3n-bob'])
const tokens = { check: async (token: string | null): Promise<boolean> => { await new Promise((resolve) => setImmediate(resolve)); return token !== null && TOKENS.has(token) } }

const ORIGINS: Array<string | null> = [null, 'https://phone.example.com', 'https://evil.example', 'null', 'https://phone.example.com.evil.net', 'HTTPS://PHONE.EXAMPLE.COM', 'http://phone.example.com']
const QUERIES = ['', '?token=t0k3n-alice', '?token=t0k3n-bob', '?token=wrong', '?token=', '?token=t0k3n-alice%00', '?TOKEN=t0k3n-alice', '?token=wrong&token=t0k3n-alice', '?x=1&token=t0k3n-bob', '?token=T0K3N-ALICE']

describe('access control', () => {
  test(`500 handshakes with seeded Origin and token variants, each with a message pipelined behind it: only admitted clients ever reach websocket:message (seed ${SEED})`, async (t) => {
    const ATTEMPTS = 500
    const admittedPorts = new Set<number>()
    const openedPorts = new Set<number>()
    const messagePorts: number[] = []
    const messages = new EventEmitter()
    const s = await startApp({}, (app) => {
      app.addWsHook('xhttp:request', async (request, reply) => {
        if (request.headers.origin !== undefined && !ALLOWED.includes(request.headers.origin)) {
          return await reply.code(403).send('Forbidden origin')
        }
        const token = new URL(request.url, 'http://x').searchParams.get('token')
        if (!(await tokens.check(token))) {
          return await reply.code(401).header('WWW-Authenticate', 'Bearer realm="sip"').send()
        }
      })
      app.addWsHook('websocket:open', (e) => { openedPorts.add(e.remotePort) })
      app.addWsHook('websocket:message', (m) => { messagePorts.push(m.remotePort); messages.emit(`from:${m.remotePort}`) })
    })
    const rng = new Rng(SEED)
    const counts = { admitted: 0, forbidden: 0, unauthorized: 0 }
    try {
      await runConcurrently(ATTEMPTS, 20, async (i) => {
        const r = rng.fork(i)
        // Weighted so that a fair share gets in: no Origin or the allowed one, and a good token.
        const origin = r.bool(0.6) ? r.pick(ORIGINS.slice(0, 2)) : r.pick(ORIGINS.slice(2))
        const query = r.bool(0.4) ? r.pick(QUERIES.slice(1, 3)) : r.pick(QUERIES)
        // The same rules, written as the test's own expectation.
        const firstToken = /[?&]token=([^&]*)/.exec(query)?.[1]
        const originOk = origin === null || origin === 'https://phone.example.com'
        const admitted = originOk && (firstToken === 't0k3n-alice' || firstToken === 't0k3n-bob')
        const lines = handshakeLines(s.port, { Origin: origin }, `GET /${query} HTTP/1.1`)
        // An attacker need not wait for the 101: a text frame right behind the request, in the same write.
        const bytes = Buffer.concat([Buffer.from(request(lines)), frame(1, `sneaked in by ${i}`)])
        const res = await rawRequest(s.port, bytes)
        const port = res.socket.localPort ?? 0
        const what = `seed ${SEED} attempt ${i}: Origin ${String(origin)}, query "${query}"`
        if (admitted) {
          assert.equal(res.status, 101, what)
          admittedPorts.add(port)
          counts.admitted++
          // The pipelined frame is delivered; wait for it before hanging up.
          if (!messagePorts.includes(port)) await within(once(messages, `from:${port}`), 5000, () => `no message from an admitted client: ${what}`)
        } else {
          assert.equal(res.status, originOk ? 401 : 403, what)
          if (originOk) counts.unauthorized++
          else counts.forbidden++
        }
        res.socket.destroy()
      })
      t.diagnostic(`seed ${SEED}: ${counts.admitted} admitted, ${counts.forbidden} refused for their Origin (403), ${counts.unauthorized} for their token (401)`)
      assert.ok(counts.admitted > 0 && counts.forbidden > 0 && counts.unauthorized > 0)
      assert.deepEqual([...openedPorts].sort(), [...admittedPorts].sort(), 'websocket:open only for admitted clients')
      assert.deepEqual([...messagePorts].sort(), [...admittedPorts].sort(), 'one message from each admitted client, none from any other')
      assert.equal(s.app.wsStats().ws_successful_handshakes, counts.admitted)
    } finally {
      await s.app.close()
    }
  })

  test(`300 unauthenticated JSON-RPC calls change nothing (seed ${SEED})`, async (t) => {
    const RPC_TOKEN = 'rpc-s3cret'
    const CALLS = 300
    const s = await startApp({ rpc: { path: '/RPC' } }, (app) => {
      // The README's "Protecting /RPC" example.
      app.addWsHook('rpc:request', async (request, reply) => {
        if (request.headers.authorization !== `Bearer ${RPC_TOKEN}`) {
          return await reply.code(401).header('WWW-Authenticate', 'Bearer').send({ error: 'unauthorized' })
        }
      })
    })
    const clients: WebSocket[] = []
    try {
      for (let i = 0; i < 5; i++) clients.push(await connect(s.url))
      let controlFrames = 0
      for (const ws of clients) {
        ws.on('ping', () => { controlFrames++ })
        ws.on('pong', () => { controlFrames++ })
      }
      const ids = s.app.wsDump().connections.map((c) => c.id)
      const statsBefore = s.app.wsStats()
      const rng = new Rng(SEED ^ 0x5eed)
      const methods = ['ws.close', 'ws.ping', 'ws.pong', 'ws.disable', 'ws.dump', 'stats.get_statistics']
      const auth = [undefined, 'Bearer wrong', 'Bearer', `bearer ${RPC_TOKEN}`, `Basic ${Buffer.from(`admin:${RPC_TOKEN}`).toString('base64')}`, RPC_TOKEN, `Bearer ${RPC_TOKEN}x`, `Token ${RPC_TOKEN}`]
      const paths = ['/RPC', '/RPC', '/RPC', `/RPC?token=${RPC_TOKEN}`, '/rpc', '/RPC/', '//RPC']
      const statuses = new Map<number, number>()
      await runConcurrently(CALLS, 10, async (i) => {
        const r = rng.fork(i)
        const one = (): unknown => ({ jsonrpc: '2.0', method: r.pick(methods), params: [r.pick(ids)], ...(r.bool(0.8) ? { id: i } : {}), token: RPC_TOKEN })
        const body = r.bool(0.3) ? Array.from({ length: r.int(1, 5) }, one) : one()
        const headers: Record<string, string> = { 'content-type': r.pick(['application/json', 'text/plain', 'application/x-www-form-urlencoded']) }
        const authorization = r.pick(auth)
        if (authorization !== undefined) headers.authorization = authorization
        const method = r.bool(0.9) ? 'POST' : r.pick(['GET', 'PUT'])
        const res = await fetch(`http://127.0.0.1:${s.port}${r.pick(paths)}`, { method, headers, body: method === 'GET' ? undefined : JSON.stringify(body) })
        await res.arrayBuffer()
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
        assert.ok(res.status === 401 || res.status === 404, `call ${i} (${method}, Authorization ${String(authorization)}) answered ${res.status}`)
      })
      t.diagnostic(`seed ${SEED}: ${CALLS} calls: ${[...statuses].map(([code, n]) => `${code}×${n}`).join(', ')}`)

      assert.deepEqual(s.app.wsDump().connections.map((c) => c.id), ids, 'every connection still open')
      assert.deepEqual(s.app.wsStats(), statsBefore, 'no frame sent, nothing closed, nothing counted')
      assert.equal(controlFrames, 0, 'no Ping or Pong reached a client')
      const fresh = await connect(s.url)
      assert.equal(fresh.protocol, 'sip', 'the service was not disabled')
      fresh.terminate()
      for (const ws of clients) {
        ws.ping()
        await new Promise((resolve) => ws.once('pong', resolve))
      }
      // The right token still works, so the refusals above were the hook's doing, not a broken endpoint.
      const ok = await fetch(`http://127.0.0.1:${s.port}/RPC`, { method: 'POST', headers: { authorization: `Bearer ${RPC_TOKEN}` }, body: JSON.stringify({ jsonrpc: '2.0', method: 'ws.ping', params: [ids[0]], id: 1 }) })
      assert.deepEqual(await ok.json(), { jsonrpc: '2.0', result: {}, id: 1 })
    } finally {
      for (const ws of clients) ws.terminate()
      await s.app.close()
    }
  })
})
