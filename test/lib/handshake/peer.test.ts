import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { FastifyServerOptions } from 'fastify'
import WebSocket from 'ws'
import type { WsClosedEvent, WsOpenEvent } from '../../../lib'
import { startForwarder, type Forwarder } from '../../helpers/proxy'
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
