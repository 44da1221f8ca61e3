import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import WebSocket from 'ws'
import type { WsClosedEvent } from '../../lib'
import { frame, rawWebSocket } from '../helpers/frames'
import { MiB, activeResources, mib, resourceGrowth, settledMemory } from '../helpers/memory'
import { runConcurrently, within } from '../helpers/pool'
import { handshakeLines, rawRequest, request } from '../helpers/raw'
import { closed, connect, nextMessage, startApp } from '../helpers/server'

interface Attempt { status: number, retryAfter?: string, ws?: WebSocket }

/** One handshake from `localAddress` (any 127/8 address is this host): the open client, or the refusal. */
async function attempt (url: string, localAddress = '127.0.0.1'): Promise<Attempt> {
  const ws = new WebSocket(url, 'sip', { localAddress })
  return await new Promise((resolve, reject) => {
    ws.once('open', () => { resolve({ status: 101, ws }) })
    ws.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] })
      res.resume()
      ws.terminate()
    })
    ws.once('error', reject)
  })
}

function closedCollector (): { events: WsClosedEvent[], hook: (e: WsClosedEvent) => void, count: (n: number) => Promise<void> } {
  const events: WsClosedEvent[] = []
  const waiters: Array<{ n: number, resolve: () => void }> = []
  return {
    events,
    hook: (e) => {
      events.push(e)
      for (const w of waiters.filter((w) => events.length >= w.n)) { waiters.splice(waiters.indexOf(w), 1); w.resolve() }
    },
    count: async (n) => { if (events.length < n) await new Promise<void>((resolve) => waiters.push({ n, resolve })) }
  }
}

describe('connection limits under a burst', () => {
  test('maxConnections 50: of 200 simultaneous handshakes exactly 50 open, 150 get 503 + Retry-After; closing frees slots', async () => {
    const LIMIT = 50
    const c = closedCollector()
    const s = await startApp({ maxConnections: LIMIT }, (app) => { app.addWsHook('websocket:closed', c.hook) })
    try {
      const burst = await Promise.all(Array.from({ length: 200 }, async () => await rawRequest(s.port, request(handshakeLines(s.port)))))
      const open = burst.filter((r) => r.status === 101)
      const refused = burst.filter((r) => r.status !== 101)
      assert.equal(open.length, LIMIT)
      for (const r of refused) {
        assert.deepEqual([r.status, r.headers['retry-after']], [503, '5'])
        assert.match(r.body, /Connection limit reached \(50\)/)
        r.socket.destroy()
      }
      assert.equal(s.app.wsDump().wscounter, LIMIT)
      assert.equal(s.app.wsStats().ws_failed_handshakes, 150)

      for (const r of open.slice(0, 10)) r.socket.destroy()
      await c.count(10)
      const again = await Promise.all(Array.from({ length: 15 }, async () => await attempt(s.url)))
      assert.equal(again.filter((a) => a.status === 101).length, 10, 'exactly the 10 freed slots are taken')
      assert.equal(again.filter((a) => a.status === 503).length, 5)
      for (const a of again) a.ws?.terminate()
      for (const r of open.slice(10)) r.socket.destroy()
      await c.count(LIMIT + 10)
      assert.equal(s.app.wsDump().wscounter, 0)
    } finally { await s.app.close() }
  })

  test('maxConnectionsPerIp 10: a burst from one address gets 10; other addresses are not held back', async () => {
    const PER_IP = 10
    const s = await startApp({ maxConnectionsPerIp: PER_IP })
    const clients: WebSocket[] = []
    try {
      const burst = await Promise.all(Array.from({ length: 40 }, async () => await attempt(s.url, '127.0.0.1')))
      const open = burst.filter((a) => a.status === 101)
      assert.equal(open.length, PER_IP)
      for (const a of burst.filter((a) => a.status !== 101)) assert.deepEqual([a.status, a.retryAfter], [503, '5'])
      clients.push(...open.map((a) => a.ws as WebSocket))
      for (const address of ['127.0.0.2', '127.0.0.3']) {
        const from = await Promise.all(Array.from({ length: PER_IP + 1 }, async () => await attempt(s.url, address)))
        assert.equal(from.filter((a) => a.status === 101).length, PER_IP, address)
        assert.equal(from.filter((a) => a.status === 503).length, 1, address)
        clients.push(...from.flatMap((a) => a.ws === undefined ? [] : [a.ws]))
      }
      assert.equal(s.app.wsDump().wscounter, 3 * PER_IP)
      const byAddress = new Map<string, number>()
      for (const conn of s.app.wsDump().connections) byAddress.set(conn.remoteAddress, (byAddress.get(conn.remoteAddress) ?? 0) + 1)
      assert.deepEqual(Object.fromEntries(byAddress), { '127.0.0.1': PER_IP, '127.0.0.2': PER_IP, '127.0.0.3': PER_IP })
    } finally {
      for (const ws of clients) ws.terminate()
      await s.app.close()
    }
  })
})

describe('churn', () => {
  test('5,000 connect/message/close cycles leave the registry empty and memory and handles back near their start', async (t) => {
    const CYCLES = 5000
    const WARMUP = 300
    const CONCURRENCY = 50
    // Stated bounds: what 5,000 connections may leave behind at most once they are all gone.
    const HEAP_BOUND = 4 * MiB
    const BUFFER_BOUND = 4 * MiB
    const c = closedCollector()
    const idByPort = new Map<number, number>()
    const s = await startApp({}, (app) => {
      app.addWsHook('websocket:open', (e) => { idByPort.set(e.remotePort, e.id) })
      app.addWsHook('websocket:message', (m) => { app.wsSend(m.id, m.data) })
      app.addWsHook('websocket:closed', (e) => { idByPort.delete(e.remotePort); c.hook(e) })
    })
    // Four ways to end: the client's Close, a TCP drop, our wsClose, the client's Close with a code.
    const cycle = async (i: number): Promise<void> => {
      const ws = await connect(s.url, i % 2 === 0 ? 'sip' : 'msrp')
      ws.send(`m${i}`)
      assert.equal(String((await nextMessage(ws)).data), `m${i}`)
      const gone = closed(ws)
      switch (i % 4) {
        case 0: ws.close(); break
        case 1: ws.terminate(); break
        case 2: assert.equal(s.app.wsClose(idByPort.get((ws as unknown as { _socket: { localPort: number } })._socket.localPort) ?? -1), true); break
        case 3: ws.close(4000, 'bye'); break
      }
      await gone
    }
    try {
      await runConcurrently(WARMUP, CONCURRENCY, cycle)
      await c.count(WARMUP)
      const memoryBefore = settledMemory()
      const handlesBefore = activeResources()
      const started = Date.now()

      await runConcurrently(CYCLES, CONCURRENCY, async (i) => { await cycle(WARMUP + i) })
      await within(c.count(WARMUP + CYCLES), 10_000, () => `${c.events.length - WARMUP} of ${CYCLES} closed events`)
      const seconds = (Date.now() - started) / 1000
      const memoryAfter = settledMemory()
      const handlesAfter = activeResources()

      assert.equal(s.app.wsDump().wscounter, 0, 'the registry is empty')
      const stats = s.app.wsStats()
      assert.equal(stats.ws_current_connections, 0)
      assert.equal(stats.ws_successful_handshakes, WARMUP + CYCLES)
      assert.equal(stats.ws_local_closed_connections + stats.ws_remote_closed_connections + stats.ws_failed_connections, WARMUP + CYCLES)
      assert.equal(new Set(c.events.map((e) => e.id)).size, WARMUP + CYCLES, 'one closed event per connection')
      const heapGrowth = memoryAfter.heapUsed - memoryBefore.heapUsed
      const bufferGrowth = memoryAfter.external - memoryBefore.external
      assert.ok(heapGrowth < HEAP_BOUND, `heap grew ${mib(heapGrowth)} (bound ${mib(HEAP_BOUND)})`)
      assert.ok(bufferGrowth < BUFFER_BOUND, `memory outside the heap grew ${mib(bufferGrowth)} (bound ${mib(BUFFER_BOUND)})`)
      assert.deepEqual(resourceGrowth(handlesBefore, handlesAfter), {}, `handles before ${JSON.stringify(handlesBefore)}, after ${JSON.stringify(handlesAfter)}`)
      assert.equal(idByPort.size, 0)
      t.diagnostic(`churn: ${CYCLES} cycles in ${seconds.toFixed(1)} s; heap ${mib(memoryBefore.heapUsed)} -> ${mib(memoryAfter.heapUsed)}; outside the heap ${mib(memoryBefore.external)} -> ${mib(memoryAfter.external)}; handles ${JSON.stringify(handlesBefore)} -> ${JSON.stringify(handlesAfter)}`)
    } finally { await s.app.close() }
  })
})

describe('frame floods', () => {
  test('20,000 empty fragments of one message: closed with 1008 (ws maxFragments 16384), not buffered without end', async () => {
    const c = closedCollector()
    const s = await startApp({}, (app) => { app.addWsHook('websocket:closed', c.hook) })
    try {
      const reader = await rawWebSocket(s.port)
      const fragments = [frame(1, '', { fin: false }), ...Array.from({ length: 20_000 }, () => frame(0, '', { fin: false }))]
      reader.write(Buffer.concat(fragments))
      assert.equal((await reader.closeFrame())?.code, 1008)
      reader.socket.end()
      await c.count(1)
      assert.deepEqual([c.events[0].by, c.events[0].code], ['error', 1008])
      assert.equal(s.app.wsDump().wscounter, 0)
    } finally { await s.app.close() }
  })

  test('a Ping flood from a peer that reads nothing is cut off (ws drops it past 60 unsent Pongs), leaving nothing behind', async (t) => {
    const PINGS = 100_000
    const c = closedCollector()
    const s = await startApp({}, (app) => { app.addWsHook('websocket:closed', c.hook) })
    try {
      const reader = await rawWebSocket(s.port)
      reader.socket.pause()
      const before = settledMemory()
      const ping = frame(9, Buffer.alloc(125, 0x70))
      let written = 0
      // Written in batches as the socket drains; stops when the server drops the connection.
      while (written < PINGS && !reader.socket.destroyed) {
        const batch = Buffer.concat(Array.from({ length: 1000 }, () => ping))
        written += 1000
        if (!reader.socket.write(batch)) await Promise.race([once(reader.socket, 'drain'), c.count(1)])
        if (c.events.length > 0) break
      }
      await within(c.count(1), 5000, () => `the server still holds the connection after ${written} Pings`)
      assert.ok(written < PINGS, `all ${PINGS} Pings were taken`)
      assert.equal(c.events.length, 1)
      assert.equal(s.app.wsDump().wscounter, 0)
      reader.socket.destroy()
      const left = settledMemory().external - before.external
      assert.ok(left < MiB, `${mib(left)} still held after the flood`)
      t.diagnostic(`Ping flood: cut off after ${written} Pings (${mib(written * ping.length)}) were written; ${mib(left)} held after`)
    } finally { await s.app.close() }
  })
})
