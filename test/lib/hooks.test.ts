import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import sipWs, { type ClusterNodeInfo, type WsOpenEvent } from '../../lib'
import { Hooks, isThenable } from '../../lib/hooks'
import { recordedLog } from '../helpers/log'
import { within } from '../helpers/pool'
import { handshakeLines, httpRequest, rawRequest, request } from '../helpers/raw'
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

describe('the Hooks class', () => {
  const NODE: ClusterNodeInfo = { instance: 'n2', slot: 2, prefixes: [2], host: 'h', pid: 1, connections: 0, lastSeen: 0, self: false }

  /** A listening app whose GET /run answers with what `hooks.runRequest(name, ...)` returned, unless a hook replied. */
  async function requestApp (hooks: Hooks, name: 'xhttp:request' | 'rpc:request', setup?: (app: FastifyInstance) => Promise<void>): Promise<{ app: FastifyInstance, port: number }> {
    const app = Fastify({ logger: false })
    app.get('/run', async (req, reply) => {
      const refused = await hooks.runRequest(name, req, reply)
      return refused ? reply : { refused }
    })
    await setup?.(app)
    await app.listen({ host: '127.0.0.1', port: 0 })
    return { app, port: (app.server.address() as { port: number }).port }
  }

  test('add checks the name and the function; has and events tell what was added, in order', async () => {
    const { log } = recordedLog()
    const hooks = new Hooks(log)
    const app = Fastify()
    assert.throws(() => { hooks.add(app, 'websocket:opened' as 'websocket:open', () => {}) }, (err: Error & { code?: string }) => {
      assert.equal(err.code, 'FST_SIPWS_UNKNOWN_HOOK')
      assert.equal(err.message, 'Unknown hook "websocket:opened"; expected one of xhttp:request, rpc:request, websocket:open, websocket:message, websocket:closed, cluster:node-down')
      return true
    })
    assert.throws(() => { hooks.add(app, 'websocket:open', 'fn' as unknown as () => void) }, { code: 'FST_SIPWS_HOOK_NOT_FUNCTION', message: 'The websocket:open hook must be a function, got string' })
    assert.equal(hooks.has('websocket:open'), false)
    const first = (): void => {}
    const second = async (): Promise<void> => {}
    hooks.add(app, 'websocket:open', first)
    hooks.add(app, 'websocket:open', second)
    assert.equal(hooks.has('websocket:open'), true)
    assert.equal(hooks.has('websocket:closed'), false)
    assert.deepEqual(hooks.events('websocket:open').map((h) => h.fn), [first, second])
    assert.deepEqual(hooks.events('websocket:message'), [])
    await app.close()
  })

  test('runRequest: in order, each awaited, `this` the instance it was added on; stops at the first that replies', async (t) => {
    const { log } = recordedLog()
    const hooks = new Hooks(log)
    const order: string[] = []
    let child: FastifyInstance | null = null
    const s = await requestApp(hooks, 'rpc:request', async (app) => { await app.register(async (instance) => { child = instance }) })
    t.after(async () => { await s.app.close() })
    assert.notEqual(child, s.app)
    hooks.add(s.app, 'rpc:request', async function (request) {
      assert.equal(this, s.app)
      await new Promise((resolve) => setImmediate(resolve))
      order.push(`a ${request.headers['x-step'] ?? ''}`)
    })
    hooks.add(child as unknown as FastifyInstance, 'rpc:request', async function (request, reply) {
      assert.equal(this, child)
      order.push('b')
      if (request.headers['x-step'] === 'refuse') await reply.code(401).send('no')
    })
    hooks.add(s.app, 'rpc:request', () => { order.push('c') })
    hooks.add(s.app, 'xhttp:request', () => { order.push('other list') })

    const passed = await httpRequest(s.port, 'GET', '/run', { 'X-Step': 'pass' })
    assert.deepEqual([passed.status, JSON.parse(passed.body)], [200, { refused: false }])
    assert.deepEqual(order.splice(0), ['a pass', 'b', 'c'])
    const refused = await httpRequest(s.port, 'GET', '/run', { 'X-Step': 'refuse' })
    assert.deepEqual([refused.status, refused.body], [401, 'no'])
    assert.deepEqual(order, ['a refuse', 'b'], 'the hook after the reply did not run')
  })

  test('runRequest lets a hook\'s error through, and the hooks after it do not run', async (t) => {
    const { log } = recordedLog()
    const hooks = new Hooks(log)
    const s = await requestApp(hooks, 'xhttp:request')
    t.after(async () => { await s.app.close() })
    let after = 0
    hooks.add(s.app, 'xhttp:request', () => { throw Object.assign(new Error('slow down'), { statusCode: 429 }) })
    hooks.add(s.app, 'xhttp:request', () => { after++ })
    assert.equal((await httpRequest(s.port, 'GET', '/run')).status, 429)
    assert.equal(after, 0)
  })

  test('call: `this` is the instance; a promise comes back only when the hook returned a thenable; a throw is logged as the hook\'s and counts as done', async () => {
    const logged = recordedLog()
    const hooks = new Hooks(logged.log)
    const app = Fastify()
    const seen: unknown[] = []
    const thenable = { then (resolve: (v: unknown) => void) { resolve('later') } }
    hooks.add(app, 'websocket:message', function (m) { seen.push(this === app, m.id) })
    hooks.add(app, 'websocket:message', async () => 'async')
    hooks.add(app, 'websocket:message', () => thenable)
    hooks.add(app, 'websocket:message', () => { throw new Error('bad handler') })
    const event = { id: 7, data: 'x', binary: false, subProtocol: 'sip', remoteAddress: '', remotePort: 0 }
    const results = hooks.events('websocket:message').map((hook) => hooks.call(hook, 'websocket:message', event))
    assert.deepEqual(seen, [true, 7])
    assert.equal(results[0], undefined)
    assert.ok(results[1] instanceof Promise)
    assert.equal(await results[1], 'async')
    assert.equal(results[2], thenable)
    assert.equal(results[3], undefined)
    const entry = await logged.next('websocket:message hook failed')
    assert.deepEqual([entry.level, entry.id, entry.hook, (entry.err as { message: string }).message], [50, 7, 'websocket:message', 'bad handler'])
    await app.close()
  })

  test('isThenable: objects and functions with a then method only', () => {
    const fn = Object.assign(() => {}, { then: () => {} })
    assert.deepEqual([Promise.resolve(), { then () {} }].map(isThenable), [true, true])
    assert.deepEqual([null, undefined, 1, 'then', { then: 1 }, fn].map(isThenable), [false, false, false, false, false, false])
  })

  test('notify: each hook in turn, the next after the last settled; errors, thrown or rejected, logged', async () => {
    const logged = recordedLog()
    const hooks = new Hooks(logged.log)
    const app = Fastify()
    const order: string[] = []
    hooks.add(app, 'cluster:node-down', async function (node) {
      assert.equal(this, app)
      order.push(`a start ${node.instance}`)
      for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve))
      order.push('a end')
    })
    hooks.add(app, 'cluster:node-down', () => { order.push('b'); throw new Error('sync boom') })
    hooks.add(app, 'cluster:node-down', async () => { order.push('c'); throw new Error('async boom') })
    hooks.add(app, 'cluster:node-down', () => { order.push('d') })
    await hooks.notify('cluster:node-down', NODE, 5000)
    assert.deepEqual(order, ['a start n2', 'a end', 'b', 'c', 'd'])
    const failures = logged.entries.filter((e) => e.msg === 'fastify-sip-ws: cluster:node-down hook failed')
    assert.deepEqual(failures.map((e) => [e.level, e.hook, (e.err as { message: string }).message]), [[50, 'cluster:node-down', 'sync boom'], [50, 'cluster:node-down', 'async boom']])
    await app.close()
  })

  test('notify waits for a hook that never settles no longer than its timeout, then runs the next', async () => {
    const TIMEOUT = 200
    const { log } = recordedLog()
    const hooks = new Hooks(log)
    const app = Fastify()
    let after = 0
    hooks.add(app, 'cluster:node-down', async () => { await new Promise(() => {}) })
    hooks.add(app, 'cluster:node-down', () => { after++ })
    const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
    const started = performance.now()
    await within(hooks.notify('cluster:node-down', NODE, TIMEOUT), TIMEOUT + 2000, () => 'notify with a hung hook')
    const took = performance.now() - started
    assert.ok(took >= TIMEOUT - 25, `returned after ${took.toFixed(0)} ms`)
    assert.equal(after, 1)
    assert.equal(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length, timersBefore, 'no timer left behind')
    await app.close()
  })
})
