import assert from 'node:assert/strict'
import https from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import { describe, test } from 'node:test'
import fastifyWebsocket from '@fastify/websocket'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import WebSocket from 'ws'
import type { WsClosedEvent, WsOpenEvent } from '../../../lib'
import { clientAddress, peerAddress } from '../../../lib/handshake/peer'
import type { ConnectionAddress } from '../../../lib/types'
import { selfSignedCert } from '../../helpers/lwsc'
import { startForwarder, type Forwarder } from '../../helpers/proxy'
import { httpRequest } from '../../helpers/raw'
import { closed, connect, startApp, type Started } from '../../helpers/server'

// Three loopback addresses play three machines: the proxy reaches the app from 127.0.0.2, clients connect
// to the proxy from 127.0.0.3 and 127.0.0.4, and one client skips the proxy from 127.0.0.5.
const PROXY = '127.0.0.2'
const ALICE = '127.0.0.3'
const BOB = '127.0.0.4'
const DIRECT = '127.0.0.5'

interface Setup {
  s: Started
  proxy: Forwarder
  opened: WsOpenEvent[]
  closedEvents: Promise<WsClosedEvent>[]
  ipsSeenByHook: string[]
  via: (from: string) => Promise<WebSocket>
  close: () => Promise<void>
}

async function behindProxy (trustProxy: FastifyServerOptions['trustProxy']): Promise<Setup> {
  const opened: WsOpenEvent[] = []
  const ipsSeenByHook: string[] = []
  const closeWaiters = new Map<number, (e: WsClosedEvent) => void>()
  const closedEvents: Promise<WsClosedEvent>[] = []
  const s = await startApp({ maxConnectionsPerIp: 1, rpc: { path: '/RPC' } }, (app) => {
    app.addWsHook('xhttp:request', (request) => { ipsSeenByHook.push(request.ip) })
    app.addWsHook('websocket:open', (event) => {
      opened.push(event)
      closedEvents.push(new Promise((resolve) => closeWaiters.set(event.id, resolve)))
    })
    app.addWsHook('websocket:closed', (event) => { closeWaiters.get(event.id)?.(event) })
  }, { logger: false, trustProxy })
  const proxy = await startForwarder(s.port, { fromAddress: PROXY, proto: 'https' })
  return {
    s,
    proxy,
    opened,
    closedEvents,
    ipsSeenByHook,
    via: async (from) => await connect(`ws://127.0.0.1:${proxy.port}/`, 'sip', { localAddress: from }),
    close: async () => {
      await s.app.close()
      await proxy.close()
    }
  }
}

/** The status of a refused handshake, or 'accepted'. */
async function outcome (url: string, options: WebSocket.ClientOptions): Promise<string> {
  const ws = new WebSocket(url, 'sip', options)
  return await new Promise((resolve, reject) => {
    ws.on('unexpected-response', (_req, res) => { resolve(String(res.statusCode)); res.resume(); ws.terminate() })
    ws.on('open', () => { resolve('accepted'); ws.terminate() })
    ws.on('error', reject)
  })
}

async function rpcDump (port: number): Promise<string[]> {
  const res = await fetch(`http://127.0.0.1:${port}/RPC`, { method: 'POST', body: JSON.stringify({ jsonrpc: '2.0', method: 'ws.dump', id: 1 }) })
  return ((await res.json()) as { result: { connections: string[] } }).result.connections
}

describe('behind a reverse proxy (Fastify trustProxy)', () => {
  test('trusted: the client from X-Forwarded-For in hooks, dumps, RPC lines, per-IP limits and the closed event; wss from X-Forwarded-Proto', async () => {
    const t = await behindProxy(true)
    try {
      const alice = await t.via(ALICE)
      const bob = await t.via(BOB)
      assert.deepEqual(t.ipsSeenByHook, [ALICE, BOB])
      const [a, b] = t.opened
      assert.deepEqual([a.remoteAddress, a.remotePort, a.socketAddress], [ALICE, 0, PROXY], 'X-Forwarded-For carries no port')
      assert.ok(a.socketPort > 0)
      assert.deepEqual([b.remoteAddress, b.socketAddress], [BOB, PROXY])

      const info = t.s.app.wsConnection(a.id)
      assert.deepEqual([info?.remoteAddress, info?.socketAddress, info?.socketPort, info?.transport], [ALICE, PROXY, a.socketPort, 'wss'])
      assert.deepEqual(t.s.app.wsDump().connections.map((c) => c.remoteAddress), [ALICE, BOB])
      const lines = await rpcDump(t.s.port)
      assert.equal(lines.length, 2)
      assert.match(lines[0], new RegExp(`^${a.id}: wss:127\\.0\\.0\\.3:0 -> wss:127\\.0\\.0\\.1:${t.s.port} \\(state: OPEN,`))
      assert.match(lines[1], new RegExp(`^${b.id}: wss:127\\.0\\.0\\.4:0 -> `))

      // maxConnectionsPerIp 1 counts clients, not the proxy: alice's second connection is her second.
      assert.equal(await outcome(`ws://127.0.0.1:${t.proxy.port}/`, { localAddress: ALICE }), '503')
      assert.equal(t.s.app.wsDump().wscounter, 2)

      const seen = closed(alice)
      assert.equal(t.s.app.wsClose(a.id, 4001, 'bye'), true)
      await seen
      const event = await t.closedEvents[0]
      assert.deepEqual([event.remoteAddress, event.remotePort, event.socketAddress, event.socketPort, event.by], [ALICE, 0, PROXY, a.socketPort, 'local'])
      bob.terminate()
    } finally { await t.close() }
  })

  test('not trusted (the default): the proxy is the client, every client lands in its bucket, X-Forwarded-Proto is ignored', async () => {
    const t = await behindProxy(false)
    try {
      const alice = await t.via(ALICE)
      const [a] = t.opened
      assert.deepEqual([a.remoteAddress, a.socketAddress, a.remotePort], [PROXY, PROXY, a.socketPort])
      assert.equal(t.s.app.wsConnection(a.id)?.transport, 'ws')
      assert.deepEqual(t.ipsSeenByHook, [PROXY])
      // bob is another person, but through an untrusted proxy he shares its address and its one slot.
      assert.equal(await outcome(`ws://127.0.0.1:${t.proxy.port}/`, { localAddress: BOB }), '503')
      assert.match((await rpcDump(t.s.port))[0], new RegExp(`^${a.id}: ws:127\\.0\\.0\\.2:${a.socketPort} -> ws:127\\.0\\.0\\.1:${t.s.port} `))
      alice.terminate()
      const event = await t.closedEvents[0]
      assert.deepEqual([event.remoteAddress, event.socketAddress], [PROXY, PROXY])
    } finally { await t.close() }
  })

  test('trusting only the proxy\'s address: a client that connects directly cannot claim another address or TLS', async () => {
    const t = await behindProxy(PROXY)
    try {
      const forged = { localAddress: DIRECT, headers: { 'X-Forwarded-For': '198.51.100.7', 'X-Forwarded-Proto': 'https' } }
      const direct = await connect(t.s.url, 'sip', forged)
      const alice = await t.via(ALICE)
      const [d, a] = t.opened
      assert.deepEqual([d.remoteAddress, d.socketAddress, t.s.app.wsConnection(d.id)?.transport], [DIRECT, DIRECT, 'ws'])
      assert.deepEqual([a.remoteAddress, a.socketAddress, t.s.app.wsConnection(a.id)?.transport], [ALICE, PROXY, 'wss'])
      direct.terminate()
      alice.terminate()
    } finally { await t.close() }
  })
})

describe('peerAddress and clientAddress on real requests', () => {
  /** An app whose GET /peer answers peerAddress (with the request's socket) and clientAddress as JSON. */
  async function peerApp (fastifyOptions: FastifyServerOptions & { https?: { key: string, cert: string } }, host = '127.0.0.1'): Promise<{ app: FastifyInstance, port: number }> {
    // Fastify's types give an `https` app another instance type; the route is the same.
    const app = Fastify(fastifyOptions as FastifyServerOptions)
    app.get('/peer', async (request) => ({ peer: peerAddress(request, request.raw.socket), client: clientAddress(request), socketPort: request.raw.socket.remotePort }))
    await app.listen({ host, port: 0 })
    return { app, port: (app.server.address() as AddressInfo).port }
  }

  async function ask (port: number, headers: Record<string, string> = {}): Promise<{ peer: ConnectionAddress, client: string, socketPort: number }> {
    const res = await httpRequest(port, 'GET', '/peer', headers)
    assert.equal(res.status, 200, res.body)
    return JSON.parse(res.body)
  }

  const FORWARDED = { 'X-Forwarded-For': '203.0.113.9, 198.51.100.2', 'X-Forwarded-Proto': 'http, https' }

  test('no trustProxy: the socket\'s peer with its port, both ends; X-Forwarded-* ignored', async (t) => {
    const s = await peerApp({ trustProxy: false })
    t.after(async () => { await s.app.close() })
    const { peer, client, socketPort } = await ask(s.port, FORWARDED)
    assert.ok(socketPort > 0)
    assert.equal(client, '127.0.0.1')
    assert.deepEqual(peer, { remoteAddress: '127.0.0.1', remotePort: socketPort, socketAddress: '127.0.0.1', socketPort, localAddress: '127.0.0.1', localPort: s.port, transport: 'ws' })
  })

  test('trustProxy: the client X-Forwarded-For names, with port 0 (unknown); the last X-Forwarded-Proto decides wss', async (t) => {
    const all = await peerApp({ trustProxy: true })
    const byAddress = await peerApp({ trustProxy: '127.0.0.1' })
    t.after(async () => { await all.app.close(); await byAddress.app.close() })
    const full = await ask(all.port, FORWARDED)
    assert.deepEqual(full.peer, { remoteAddress: '203.0.113.9', remotePort: 0, socketAddress: '127.0.0.1', socketPort: full.socketPort, localAddress: '127.0.0.1', localPort: all.port, transport: 'wss' })
    assert.equal(full.client, '203.0.113.9')
    // Trusting only the proxy's address, the client is the address it added: the last one.
    const trusted = await ask(byAddress.port, FORWARDED)
    assert.deepEqual([trusted.peer.remoteAddress, trusted.peer.remotePort, trusted.client], ['198.51.100.2', 0, '198.51.100.2'])
    for (const [proto, transport] of [['https', 'wss'], ['wss', 'wss'], ['http', 'ws'], ['ws', 'ws'], ['https, http', 'ws']]) {
      assert.equal((await ask(all.port, { 'X-Forwarded-Proto': proto })).peer.transport, transport, proto)
    }
    // No X-Forwarded-For: the socket's peer, with its port.
    const direct = await ask(all.port)
    assert.deepEqual([direct.peer.remoteAddress, direct.peer.remotePort], ['127.0.0.1', direct.socketPort])
  })

  test('trusting another address: a client cannot name itself or claim TLS', async (t) => {
    const s = await peerApp({ trustProxy: '127.0.0.2' })
    t.after(async () => { await s.app.close() })
    const { peer, socketPort } = await ask(s.port, FORWARDED)
    assert.deepEqual([peer.remoteAddress, peer.remotePort, peer.transport], ['127.0.0.1', socketPort, 'ws'])
  })

  test('a TLS socket is wss with no header to say so', async (t) => {
    const { key, cert } = await selfSignedCert()
    const s = await peerApp({ https: { key, cert } })
    t.after(async () => { await s.app.close() })
    const body = await new Promise<string>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port: s.port, path: '/peer', ca: cert, agent: false }, (res) => {
        let text = ''
        res.on('data', (chunk: Buffer) => { text += chunk.toString() })
        res.on('end', () => { resolve(text) })
      }).on('error', reject)
    })
    const { peer } = JSON.parse(body) as { peer: ConnectionAddress }
    assert.deepEqual([peer.remoteAddress, peer.localPort, peer.transport], ['127.0.0.1', s.port, 'wss'])
  })

  test('IPv6: addresses as the socket gives them', async (t) => {
    const s = await peerApp({}, '::1')
    t.after(async () => { await s.app.close() })
    const res = await fetch(`http://[::1]:${s.port}/peer`)
    const { peer } = await res.json() as { peer: ConnectionAddress }
    assert.deepEqual([peer.remoteAddress, peer.socketAddress, peer.localAddress, peer.localPort], ['::1', '::1', '::1', s.port])
  })

  test('an injected request (no network socket): empty addresses and ports 0, under trustProxy too', async (t) => {
    const seen: Array<{ peer: ConnectionAddress, client: string }> = []
    const app = Fastify({ trustProxy: true })
    await app.register(fastifyWebsocket)
    app.addHook('onRequest', async (request, reply) => {
      if (request.ws) {
        seen.push({ peer: peerAddress(request, (reply.raw.socket ?? request.raw.socket) as Socket | null), client: clientAddress(request) })
        await reply.code(403).send()
      }
    })
    t.after(async () => { await app.close() })
    await app.ready()
    await assert.rejects(app.injectWS('/', { headers: { 'x-forwarded-for': '203.0.113.9' } }), /403/)
    assert.deepEqual(seen, [{ peer: { remoteAddress: '', remotePort: 0, socketAddress: '', socketPort: 0, localAddress: '', localPort: 0, transport: 'ws' }, client: '' }])
  })
})
