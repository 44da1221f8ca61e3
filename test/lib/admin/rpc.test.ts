import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { handle } from '../../../lib/admin/rpc'
import { RpcFault, type Method } from '../../../lib/admin/rpc-methods'
import { BadDumpOrderError, ClusterTimeoutError, InvalidCloseError } from '../../../lib/errors'
import { connect, closed, startApp, type Started } from '../../helpers/server'

async function rpc (port: number, body: unknown, raw = false, headers: Record<string, string> = {}): Promise<{ status: number, body: any }> {
  const res = await fetch(`http://127.0.0.1:${port}/RPC`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: raw ? String(body) : JSON.stringify(body) })
  const text = await res.text()
  return { status: res.status, body: text === '' ? null : JSON.parse(text) }
}

const call = (method: string, params?: unknown[], id: unknown = 1): unknown => ({ jsonrpc: '2.0', method, ...(params !== undefined ? { params } : {}), id })

describe('JSON-RPC endpoint, shapes as Kamailio jsonrpcs', () => {
  let s: Started
  before(async () => { s = await startApp({ rpc: { path: '/RPC' } }) })
  after(async () => { await s.app.close() })

  test('ws.dump: Kamailio lines and info, orders, bad order', async () => {
    const a = await connect(s.url, 'sip')
    const b = await connect(s.url, 'msrp')
    const [ia, ib] = s.app.wsDump().connections
    const res = await rpc(s.port, call('ws.dump'))
    assert.equal(res.status, 200)
    assert.deepEqual(res.body, {
      jsonrpc: '2.0',
      result: {
        connections: [
          `${ia.id}: ws:127.0.0.1:${ia.remotePort} -> ws:127.0.0.1:${s.port} (state: OPEN,  last used 0s ago, sub-protocol: sip)`,
          `${ib.id}: ws:127.0.0.1:${ib.remotePort} -> ws:127.0.0.1:${s.port} (state: OPEN,  last used 0s ago, sub-protocol: msrp)`
        ],
        info: { wscounter: 2, truncated: 'no' }
      },
      id: 1
    })
    const asc = await rpc(s.port, call('ws.dump', ['used_asc']))
    assert.deepEqual(asc.body.result.connections.map((l: string) => parseInt(l)), [ib.id, ia.id])
    const desc = await rpc(s.port, call('ws.dump', ['used_desc']))
    assert.deepEqual(desc.body.result.connections.map((l: string) => parseInt(l)), [ia.id, ib.id])
    const bad = await rpc(s.port, call('ws.dump', ['bogus']))
    assert.equal(bad.status, 400)
    assert.deepEqual(bad.body, { jsonrpc: '2.0', error: { code: 400, message: 'Bad display order parameter' }, id: 1 })
    a.terminate(); b.terminate()
  })

  test('ws.close / ws.ping / ws.pong: {} or Kamailio errors', async () => {
    const ws = await connect(s.url)
    const id = s.app.wsDump().connections.at(-1)!.id
    const ping = new Promise<string>((resolve) => ws.once('ping', (d: Buffer) => { resolve(d.toString()) }))
    assert.deepEqual((await rpc(s.port, call('ws.ping', [id]))).body, { jsonrpc: '2.0', result: {}, id: 1 })
    assert.match(await ping, /^fastify-sip-ws \(\d+\.\d+\.\d+\)$/)
    const pong = new Promise<string>((resolve) => ws.once('pong', (d: Buffer) => { resolve(d.toString()) }))
    assert.deepEqual((await rpc(s.port, call('ws.pong', [id]))).body.result, {})
    assert.match(await pong, /^fastify-sip-ws/)
    for (const method of ['ws.close', 'ws.ping', 'ws.pong']) {
      const missing = await rpc(s.port, call(method, []))
      assert.equal(missing.status, 500)
      assert.deepEqual(missing.body.error, { code: 500, message: 'Invalid Parameters' })
      for (const bad of [999999, 'x', String(id)]) {
        const unknown = await rpc(s.port, call(method, [bad]))
        assert.deepEqual([unknown.status, unknown.body.error], [500, { code: 500, message: 'Unknown connection ID' }], `${method} ${String(bad)}`)
      }
    }
    const gone = closed(ws)
    assert.deepEqual((await rpc(s.port, call('ws.close', [id]))).body.result, {})
    assert.deepEqual(await gone, { code: 1000, reason: 'Normal closure' })
  })

  test('ws.disable / ws.enable', async () => {
    assert.deepEqual((await rpc(s.port, call('ws.disable'))).body, { jsonrpc: '2.0', result: {}, id: 1 })
    await assert.rejects(connect(s.url), /503/)
    assert.deepEqual((await rpc(s.port, call('ws.enable'))).body.result, {})
    const ws = await connect(s.url)
    ws.terminate()
  })

  test('stats.get_statistics: sorted "websocket:<name> = <n>" lines for the group, all, or names', async () => {
    const group = await rpc(s.port, call('stats.get_statistics', ['websocket:']))
    const lines: string[] = group.body.result
    assert.ok(lines.length >= 25)
    assert.deepEqual([...lines].sort(), lines)
    for (const line of lines) assert.match(line, /^websocket:ws_[a-z_]+ = \d+$/)
    const stats = s.app.wsStats()
    assert.ok(lines.includes(`websocket:ws_successful_handshakes = ${stats.ws_successful_handshakes}`))
    const names = (l: string[]): string[] => l.map((x) => x.split(' = ')[0])
    assert.deepEqual(names((await rpc(s.port, call('stats.get_statistics', ['all']))).body.result), names(lines))
    const picked: string[] = (await rpc(s.port, call('stats.get_statistics', ['ws_failed_handshakes', 'websocket:ws_successful_handshakes']))).body.result
    assert.deepEqual(picked, [`websocket:ws_failed_handshakes = ${stats.ws_failed_handshakes}`, `websocket:ws_successful_handshakes = ${stats.ws_successful_handshakes}`])
  })

  test('JSON-RPC 2.0 errors: parse error, invalid request, unknown method', async () => {
    assert.deepEqual(await rpc(s.port, '{bad json', true), { status: 500, body: { jsonrpc: '2.0', error: { code: -32700, message: 'Parse error' }, id: null } })
    assert.deepEqual((await rpc(s.port, { jsonrpc: '2.0', id: 7 })).body, { jsonrpc: '2.0', error: { code: -32600, message: 'Invalid Request' }, id: 7 })
    assert.deepEqual((await rpc(s.port, [])).body.error.code, -32600)
    assert.deepEqual((await rpc(s.port, 42)).body.error.code, -32600)
    const unknown = await rpc(s.port, call('nope.nope', [], 'abc'))
    assert.deepEqual(unknown.body, { jsonrpc: '2.0', error: { code: -32601, message: 'Method not found' }, id: 'abc' })
    assert.equal((await rpc(s.port, call('toString'))).body.error.code, -32601)
  })

  test('batches answer each call in order; notifications get no answer', async () => {
    const res = await rpc(s.port, [call('ws.enable', [], 1), { jsonrpc: '2.0', method: 'ws.enable' }, call('nope', [], 3), 5])
    assert.equal(res.status, 200)
    assert.deepEqual(res.body, [
      { jsonrpc: '2.0', result: {}, id: 1 },
      { jsonrpc: '2.0', error: { code: -32601, message: 'Method not found' }, id: 3 },
      { jsonrpc: '2.0', error: { code: -32600, message: 'Invalid Request' }, id: null }
    ])
    const note = await rpc(s.port, { jsonrpc: '2.0', method: 'ws.enable' })
    assert.deepEqual(note, { status: 204, body: null })
  })

  test('the app\'s own JSON body parsing is untouched', async () => {
    const t = await startApp({ rpc: { path: '/RPC' } }, (app) => { app.post('/echo', async (req) => req.body) })
    try {
      const res = await fetch(`http://127.0.0.1:${t.port}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' })
      assert.deepEqual(await res.json(), { a: 1 })
    } finally { await t.app.close() }
  })
})

describe('protecting the RPC endpoint', () => {
  test('an rpc:request hook refuses unauthenticated calls, which change nothing', async () => {
    const s = await startApp({ rpc: { path: '/RPC' } }, (app) => {
      app.addWsHook('rpc:request', async (request, reply) => {
        if (request.headers.authorization !== 'Bearer admin') return await reply.code(401).header('WWW-Authenticate', 'Bearer').send({ error: 'unauthorized' })
      })
    })
    try {
      const ws = await connect(s.url)
      const id = s.app.wsDump().connections[0].id
      for (const body of [call('ws.disable'), call('ws.close', [id])]) {
        const res = await rpc(s.port, body)
        assert.equal(res.status, 401)
      }
      const again = await connect(s.url)
      assert.equal(s.app.wsConnection(id)?.state, 'OPEN')
      const ok = await rpc(s.port, call('ws.dump'), false, { authorization: 'Bearer admin' })
      assert.equal(ok.body.result.info.wscounter, 2)
      ws.terminate(); again.terminate()
    } finally { await s.app.close() }
  })

  test('without the rpc option there is no endpoint', async () => {
    const s = await startApp()
    try {
      assert.equal((await fetch(`http://127.0.0.1:${s.port}/RPC`, { method: 'POST', body: '{}' })).status, 404)
    } finally { await s.app.close() }
  })
})

describe('handle(): JSON-RPC 2.0 with Kamailio\'s faults, on methods of the test\'s own', () => {
  const INVALID = { code: -32600, message: 'Invalid Request' }
  const body = (value: unknown): string => JSON.stringify(value)

  /** Methods that record what they were called with, in order. */
  function recorded (): { methods: Record<string, Method>, calls: Array<[string, unknown[]]> } {
    const calls: Array<[string, unknown[]]> = []
    const methods: Record<string, Method> = {
      echo: (params) => { calls.push(['echo', params]); return params },
      nothing: () => { calls.push(['nothing', []]); return null }
    }
    return { methods, calls }
  }

  test('a request is checked before its method runs: jsonrpc other than "2.0", a method not a string, params not a list', async () => {
    const { methods, calls } = recorded()
    for (const request of [
      { jsonrpc: '1.0', method: 'echo', id: 1 },
      { jsonrpc: 2, method: 'echo', id: 1 },
      { jsonrpc: '2.0', method: 42, id: 1 },
      { jsonrpc: '2.0', method: 'echo', params: { a: 1 }, id: 1 },
      { jsonrpc: '2.0', method: 'echo', params: 'x', id: 1 }
    ]) {
      assert.deepEqual(await handle(methods, body(request)), { status: 500, payload: { jsonrpc: '2.0', error: INVALID, id: 1 } }, JSON.stringify(request))
    }
    for (const request of [null, 'text', true, [[]]]) {
      const { payload } = await handle(methods, body(request))
      const expected = { jsonrpc: '2.0', error: INVALID, id: null }
      assert.deepEqual(payload, Array.isArray(request) ? [expected] : expected, JSON.stringify(request))
    }
    assert.deepEqual(calls, [])
  })

  test('without "jsonrpc" (as Kamailio\'s clients often send) or params, a call runs with no params; the id comes back as sent', async () => {
    const { methods, calls } = recorded()
    assert.deepEqual(await handle(methods, body({ method: 'echo', id: 'a' })), { status: 200, payload: { jsonrpc: '2.0', result: [], id: 'a' } })
    for (const id of [0, null, 'x', 1.5]) {
      assert.deepEqual((await handle(methods, body({ jsonrpc: '2.0', method: 'nothing', id }))).payload, { jsonrpc: '2.0', result: null, id })
    }
    assert.deepEqual(calls[0], ['echo', []])
    assert.equal(calls.length, 5)
  })

  test('only the methods\' own names are methods: nothing an object inherits', async () => {
    const { methods } = recorded()
    for (const method of ['__proto__', 'constructor', 'hasOwnProperty', 'valueOf']) {
      assert.deepEqual(await handle(methods, body({ jsonrpc: '2.0', method, id: 1 })), { status: 500, payload: { jsonrpc: '2.0', error: { code: -32601, message: 'Method not found' }, id: 1 } }, method)
    }
  })

  test('faults: an RpcFault keeps its code as the HTTP status (500 for a JSON-RPC code); the package\'s typed errors their status; anything else is a bare 500', async () => {
    const throwing = (err: unknown): Method => () => { throw err }
    const rejecting = (err: unknown): Method => async () => await Promise.reject(err)
    const cases: Array<[unknown, number, { code: number, message: string }]> = [
      [new RpcFault(404, 'Not Found'), 404, { code: 404, message: 'Not Found' }],
      [new RpcFault(-32000, 'Server error'), 500, { code: -32000, message: 'Server error' }],
      [new RpcFault(600, 'Out of range'), 500, { code: 600, message: 'Out of range' }],
      // Kamailio's own text, whatever ours says.
      [new BadDumpOrderError('newest'), 400, { code: 400, message: 'Bad display order parameter' }],
      [new ClusterTimeoutError(2000), 504, { code: 504, message: 'cluster: no answer from the owning node within requestTimeout (2000 ms)' }],
      [new InvalidCloseError('status', '1005 may not be sent'), 400, { code: 400, message: 'Invalid close status: 1005 may not be sent' }],
      // Internals are not shown to the caller.
      [new Error('secret path /etc/x'), 500, { code: 500, message: 'Internal error' }],
      [Object.assign(new Error('not ours'), { code: 'ECONNRESET', statusCode: 503 }), 500, { code: 500, message: 'Internal error' }],
      [Object.assign(new Error('no status'), { code: 'FST_SIPWS_SOMETHING' }), 500, { code: 500, message: 'Internal error' }],
      ['a string', 500, { code: 500, message: 'Internal error' }]
    ]
    for (const [err, status, error] of cases) {
      for (const fn of [throwing(err), rejecting(err)]) {
        assert.deepEqual(await handle({ fails: fn }, body({ jsonrpc: '2.0', method: 'fails', id: 9 })), { status, payload: { jsonrpc: '2.0', error, id: 9 } }, String(err))
      }
    }
  })

  test('a method that throws null or undefined is a bare 500 too, and the batch it is in goes on', async () => {
    const { methods, calls } = recorded()
    for (const err of [null, undefined]) {
      const fails: Method = () => { throw err }
      assert.deepEqual(await handle({ fails }, body({ jsonrpc: '2.0', method: 'fails', id: 1 })), { status: 500, payload: { jsonrpc: '2.0', error: { code: 500, message: 'Internal error' }, id: 1 } }, String(err))
      const batch = await handle({ ...methods, fails }, body([{ jsonrpc: '2.0', method: 'fails', id: 1 }, { jsonrpc: '2.0', method: 'echo', params: [String(err)], id: 2 }]))
      assert.deepEqual(batch.payload, [{ jsonrpc: '2.0', error: { code: 500, message: 'Internal error' }, id: 1 }, { jsonrpc: '2.0', result: [String(err)], id: 2 }])
    }
    assert.equal(calls.length, 2)
  })

  test('a batch runs its calls one at a time in the order written, even when they are async', async () => {
    const order: string[] = []
    const turns = async (n: number): Promise<void> => { for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve)) }
    const methods: Record<string, Method> = {
      slow: async (params) => { order.push(`start ${String(params[0])}`); await turns(5); order.push(`end ${String(params[0])}`); return params[0] },
      fast: (params) => { order.push(`fast ${String(params[0])}`); return params[0] }
    }
    const { status, payload } = await handle(methods, body([
      { jsonrpc: '2.0', method: 'slow', params: ['a'], id: 1 },
      { jsonrpc: '2.0', method: 'fast', params: ['b'], id: 2 },
      { jsonrpc: '2.0', method: 'slow', params: ['c'] },
      { jsonrpc: '2.0', method: 'fast', params: ['d'], id: 4 }
    ]))
    assert.deepEqual(order, ['start a', 'end a', 'fast b', 'start c', 'end c', 'fast d'])
    assert.equal(status, 200)
    assert.deepEqual(payload, [
      { jsonrpc: '2.0', result: 'a', id: 1 },
      { jsonrpc: '2.0', result: 'b', id: 2 },
      { jsonrpc: '2.0', result: 'd', id: 4 }
    ])
  })

  test('a batch answers 200 even when every call failed; a failing call does not stop the rest', async () => {
    const { methods, calls } = recorded()
    const { status, payload } = await handle({ ...methods, fails: () => { throw new RpcFault(404, 'gone') } }, body([
      { jsonrpc: '2.0', method: 'fails', id: 1 },
      { jsonrpc: '2.0', method: 'echo', params: [1], id: 2 }
    ]))
    assert.equal(status, 200)
    assert.deepEqual(payload, [{ jsonrpc: '2.0', error: { code: 404, message: 'gone' }, id: 1 }, { jsonrpc: '2.0', result: [1], id: 2 }])
    assert.deepEqual(calls, [['echo', [1]]])
    assert.deepEqual(await handle(methods, body([])), { status: 500, payload: { jsonrpc: '2.0', error: INVALID, id: null } })
  })

  test('notifications run and get no answer, even when they fail or name no method: a batch of only them is a 204', async () => {
    const { methods, calls } = recorded()
    let failed = 0
    const all = { ...methods, fails: () => { failed++; throw new Error('boom') } }
    for (const method of ['echo', 'fails', 'nope']) {
      assert.deepEqual(await handle(all, body({ jsonrpc: '2.0', method, params: [method] })), { status: 204, payload: null }, method)
    }
    assert.deepEqual(await handle(all, body([{ jsonrpc: '2.0', method: 'fails' }, { jsonrpc: '2.0', method: 'echo', params: ['batched'] }, { method: 'nope' }])), { status: 204, payload: null })
    assert.deepEqual(calls, [['echo', ['echo']], ['echo', ['batched']]])
    assert.equal(failed, 2)
  })

  test('a body that is not JSON, or no body, is a parse error', async () => {
    const { methods, calls } = recorded()
    for (const text of ['', ' ', '{"jsonrpc":"2.0",', 'undefined', '[1,]', '\u0000']) {
      assert.deepEqual(await handle(methods, text), { status: 500, payload: { jsonrpc: '2.0', error: { code: -32700, message: 'Parse error' }, id: null } }, JSON.stringify(text))
    }
    assert.deepEqual(calls, [])
  })
})
