import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { adminAccess, isLoopback } from '../../example/admin-access'
import { within } from '../helpers/pool'
import { loggedApp, startApp, type Started } from '../helpers/server'
import { reportedSetUp } from '../helpers/set-up'

const DUMP = JSON.stringify({ jsonrpc: '2.0', method: 'ws.dump', id: 1 })

test('isLoopback: 127.0.0.0/8, ::1 and their IPv4-mapped forms; nothing else', () => {
  for (const address of ['127.0.0.1', '127.255.0.9', '::1', '::ffff:127.0.0.1']) assert.equal(isLoopback(address), true, address)
  for (const address of ['10.0.0.1', '::ffff:10.0.0.1', '::', '0.0.0.0', 'localhost', '', undefined]) assert.equal(isLoopback(address), false, String(address))
})

describe('the rpc:request hook with a token', () => {
  let server: Started
  const logged = loggedApp('warn')

  before(reportedSetUp(async () => {
    server = await startApp({ rpc: { path: '/RPC' } }, (app) => { app.addWsHook('rpc:request', adminAccess('s3cret')) }, logged.fastifyOptions)
  }))
  after(async () => { await server?.app.close() })

  const call = async (authorization?: string): Promise<Response> => await fetch(`http://127.0.0.1:${server.port}/RPC`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(authorization === undefined ? {} : { authorization }) },
    body: DUMP
  })

  test('the right bearer token (scheme in any case) is let through', async () => {
    assert.equal((await call('Bearer s3cret')).status, 200)
    assert.equal((await call('bearer s3cret')).status, 200)
  })

  test('none: 401 with the realm; a wrong one: 401 invalid_token; each logged', async () => {
    const none = await call()
    assert.equal(none.status, 401)
    assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="fastify-sip-ws RPC"')
    assert.deepEqual(await none.json(), { jsonrpc: '2.0', error: { code: 401, message: 'Unauthorized' }, id: null })
    const wrong = await call('Bearer s3cre')
    assert.equal(wrong.status, 401)
    assert.equal(wrong.headers.get('www-authenticate'), 'Bearer realm="fastify-sip-ws RPC", error="invalid_token"')
    assert.equal((await within(logged.next('RPC refused: no valid bearer token'), 3000, () => 'the log line')).remoteAddress, '127.0.0.1')
  })
})

describe('the rpc:request hook without a token', () => {
  let server: Started

  before(reportedSetUp(async () => {
    server = await startApp({ rpc: { path: '/RPC' } }, (app) => { app.addWsHook('rpc:request', adminAccess(undefined)) })
  }))
  after(async () => { await server?.app.close() })

  test('a loopback client is let through; one from elsewhere gets 403 saying how to allow it', async () => {
    const res = await fetch(`http://127.0.0.1:${server.port}/RPC`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: DUMP })
    assert.equal(res.status, 200)
    const refused = await server.app.inject({ method: 'POST', url: '/RPC', remoteAddress: '192.0.2.10', headers: { 'content-type': 'application/json' }, payload: DUMP })
    assert.equal(refused.statusCode, 403)
    assert.deepEqual(refused.json(), { jsonrpc: '2.0', error: { code: 403, message: 'RPC answers loopback clients only; set RPC_TOKEN to allow others' }, id: null })
  })
})
