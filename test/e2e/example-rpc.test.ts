import assert from 'node:assert/strict'
import { networkInterfaces } from 'node:os'
import { describe, test } from 'node:test'
import { optionsFromEnv } from '../../example/options'
import { httpRequest } from '../helpers/raw'
import { handshakeStatus, startExample, type Example, type StartOptions } from './helpers'

const DUMP = JSON.stringify({ jsonrpc: '2.0', method: 'ws.dump', id: 1 })
const DISABLE = JSON.stringify({ jsonrpc: '2.0', method: 'ws.disable', id: 1 })

async function rpc (url: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number, headers: Headers, body: any }> {
  const res = await fetch(url, { method: 'POST', headers, body })
  return { status: res.status, headers: res.headers, body: await res.json() }
}

/**
 * An address of this machine outside 127.0.0.0/8 and ::1. A connection from it to a server listening on
 * it never leaves the machine, yet the server sees a client that is not on loopback.
 */
function nonLoopbackAddress (): string {
  const addresses = Object.values(networkInterfaces()).flatMap((list) => list ?? [])
  const v4 = addresses.find((a) => !a.internal && a.family === 'IPv4')
  if (v4 !== undefined) return v4.address
  // Link-local addresses need a scope id in a URL; a global or unique-local one does not.
  const v6 = addresses.find((a) => !a.internal && a.family === 'IPv6' && !a.address.startsWith('fe80:'))
  assert.ok(v6 !== undefined, 'this test needs an address outside loopback on some interface (ip addr); this machine has only 127.0.0.1 and ::1')
  return v6.address
}

/** The example on `host`, and the addresses its /RPC saw requests from, with the answer each got. */
async function watchedExample (host: string, options: Parameters<typeof startExample>[0] = {}): Promise<Example & { seen: Array<[string | undefined, number]> }> {
  const seen: Array<[string | undefined, number]> = []
  const setup: StartOptions['setup'] = (app) => {
    app.addHook('onResponse', async (request, reply) => { if (request.url === '/RPC') seen.push([request.socket.remoteAddress, reply.statusCode]) })
  }
  return { ...await startExample(options, { host, setup }), seen }
}

const urlHost = (address: string): string => address.includes(':') ? `[${address}]` : address

describe('the example\'s /RPC without RPC_TOKEN: loopback clients only', () => {
  test('clients on 127.0.0.1, ::1 and ::ffff:127.0.0.1 (a dual-stack listener\'s form) are answered', async () => {
    // [listen on, connect to, the client address the server sees]
    const cases: Array<[string, string, string]> = [['127.0.0.1', '127.0.0.1', '127.0.0.1'], ['::1', '[::1]', '::1'], ['::ffff:127.0.0.1', '127.0.0.1', '::ffff:127.0.0.1']]
    for (const [listen, connectTo, client] of cases) {
      const example = await watchedExample(listen)
      try {
        const res = await rpc(`http://${connectTo}:${example.port}/RPC`, DUMP)
        assert.equal(res.status, 200, listen)
        assert.deepEqual(res.body.result.info, { wscounter: 0, truncated: 'no' })
        assert.deepEqual(example.seen, [[client, 200]])
      } finally { await example.app.close() }
    }
  })

  test('a client on a non-loopback address (plain, and IPv4-mapped) is refused with 403, and nothing runs; the WebSocket service still serves it', async (t) => {
    const address = nonLoopbackAddress()
    t.diagnostic(`non-loopback address: ${address}`)
    const listens = address.includes(':') ? [address] : [address, `::ffff:${address}`]
    for (const listen of listens) {
      const example = await watchedExample(listen)
      try {
        const base = `http://${urlHost(address)}:${example.port}`
        const res = await rpc(`${base}/RPC`, DISABLE, { 'content-type': 'application/json' })
        assert.equal(res.status, 403, listen)
        assert.deepEqual(res.body, { jsonrpc: '2.0', error: { code: 403, message: 'RPC answers loopback clients only; set RPC_TOKEN to allow others' }, id: null })
        assert.deepEqual(example.seen, [[listen, 403]], 'the server saw the client at its own, non-loopback address')
        assert.equal((await handshakeStatus(`ws://${urlHost(address)}:${example.port}/`)).status, 101, 'ws.disable did not run')
      } finally { await example.app.close() }
    }
  })
})

describe('the example\'s /RPC with RPC_TOKEN', () => {
  const TOKEN = 'c0rrect-h0rse-battery'

  test('401 with WWW-Authenticate without the token or with a wrong one, and nothing runs; 200 with it', async () => {
    const example = await startExample({ rpcToken: TOKEN })
    try {
      const url = `${example.httpUrl}RPC`
      const refused: Array<[string | undefined, string]> = [
        [undefined, 'Bearer realm="fastify-sip-ws RPC"'],
        ['Basic ' + Buffer.from(`admin:${TOKEN}`).toString('base64'), 'Bearer realm="fastify-sip-ws RPC"'],
        [TOKEN, 'Bearer realm="fastify-sip-ws RPC"'],
        ['Bearer', 'Bearer realm="fastify-sip-ws RPC"'],
        ['Bearer wrong', 'Bearer realm="fastify-sip-ws RPC", error="invalid_token"'],
        [`Bearer ${TOKEN}x`, 'Bearer realm="fastify-sip-ws RPC", error="invalid_token"'],
        [`Bearer ${TOKEN.slice(0, -1)}`, 'Bearer realm="fastify-sip-ws RPC", error="invalid_token"'],
        [`Bearer ${TOKEN} extra`, 'Bearer realm="fastify-sip-ws RPC"']
      ]
      for (const [authorization, challenge] of refused) {
        const res = await rpc(url, DISABLE, authorization === undefined ? {} : { authorization })
        assert.equal(res.status, 401, String(authorization))
        assert.equal(res.headers.get('www-authenticate'), challenge, String(authorization))
        assert.deepEqual(res.body.error, { code: 401, message: 'Unauthorized' })
      }
      assert.equal((await handshakeStatus(example.wsUrl)).status, 101, 'no ws.disable ran')
      for (const authorization of [`Bearer ${TOKEN}`, `bearer ${TOKEN}`]) {
        const ok = await rpc(url, DUMP, { authorization })
        assert.equal(ok.status, 200, authorization)
        assert.ok(Array.isArray(ok.body.result.connections), authorization)
      }
      // A page that learnt the token is still a page: the plugin refuses it before the token is looked at.
      const page = await httpRequest(example.port, 'POST', '/RPC', { Origin: 'https://evil.example', Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'text/plain' }, DISABLE)
      assert.equal(page.status, 403)
      assert.equal((await handshakeStatus(example.wsUrl)).status, 101)
    } finally { await example.app.close() }
  })

  test('with the token, a client on a non-loopback address is answered', async () => {
    const address = nonLoopbackAddress()
    const example = await watchedExample(address, { rpcToken: TOKEN })
    try {
      const base = `http://${urlHost(address)}:${example.port}/RPC`
      assert.equal((await rpc(base, DUMP)).status, 401)
      assert.equal((await rpc(base, DUMP, { authorization: `Bearer ${TOKEN}` })).status, 200)
      assert.deepEqual(example.seen, [[address, 401], [address, 200]])
    } finally { await example.app.close() }
  })

  test('RPC_TOKEN is read from the environment; empty counts as unset', () => {
    assert.equal(optionsFromEnv({ RPC_TOKEN: TOKEN }).rpcToken, TOKEN)
    assert.equal(optionsFromEnv({ RPC_TOKEN: '' }).rpcToken, undefined)
    assert.equal(optionsFromEnv({}).rpcToken, undefined)
  })
})

describe('DNS rebinding against the example', () => {
  test('a request naming another host in Origin and Host (a rebound page calling "its own" /RPC) is refused with 403', async () => {
    const example = await startExample()
    try {
      // After rebinding, evil.example:<port> resolves to this server, so the page's fetch('/RPC') is same-origin.
      const rebound = { Host: `evil.example:${example.port}`, Origin: `http://evil.example:${example.port}`, 'Sec-Fetch-Site': 'same-origin', 'Content-Type': 'text/plain' }
      const res = await httpRequest(example.port, 'POST', '/RPC', rebound, DISABLE)
      assert.equal(res.status, 403)
      assert.deepEqual(JSON.parse(res.body), { jsonrpc: '2.0', error: { code: 403, message: 'Origin not allowed' }, id: null })
      assert.equal((await handshakeStatus(example.wsUrl)).status, 101, 'ws.disable did not run')
    } finally { await example.app.close() }
  })

  test('with ALLOWED_HOSTS, /RPC refuses any other Host too, Origin or not', async () => {
    const example = await startExample({ allowedHosts: ['127.0.0.1'] })
    try {
      const refused = await httpRequest(example.port, 'POST', '/RPC', { Host: `evil.example:${example.port}` }, DISABLE)
      assert.equal(refused.status, 403)
      assert.equal(JSON.parse(refused.body).error.message, 'Host not allowed')
      assert.equal((await handshakeStatus(example.wsUrl)).status, 101)
      assert.equal((await httpRequest(example.port, 'POST', '/RPC', {}, DUMP)).status, 200)
    } finally { await example.app.close() }
  })
})
