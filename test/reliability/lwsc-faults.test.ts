import assert from 'node:assert/strict'
import type net from 'node:net'
import { performance } from 'node:perf_hooks'
import { after, describe, test } from 'node:test'
import type WebSocket from 'ws'
import { LwscClient, type LwscError } from '../../lib/lwsc'
import { frame } from '../helpers/frames'
import { freePort, startPeer, startSilentTcp, watchUnhandledRejections } from '../helpers/lwsc'
import { within } from '../helpers/pool'
import { Rng, fuzzSeed } from '../helpers/random'

const SEED = fuzzSeed()
const unhandled = watchUnhandledRejections()
after(() => { assert.deepEqual(unhandled.stop(), [], 'no unhandled rejections') })

const TIMEOUT_INIT = 300
const TIMEOUT_READ = 300
const FAST = { timeoutInit: TIMEOUT_INIT, timeoutRead: TIMEOUT_READ, keepaliveInterval: 0, reconnectBackoffMin: 20, reconnectBackoffMax: 100, poolSize: 4 }
// How late a timer may fire on a loaded 2-core machine and still count as on time.
const LATE = 1000

interface Settled { index: number, value?: string | Buffer, code?: string, url?: string, ms: number }

/** Starts every call at once and records how each one settled, and when. */
async function settleAll (count: number, call: (index: number) => Promise<unknown>): Promise<Settled[]> {
  const started = performance.now()
  return await Promise.all(Array.from({ length: count }, async (_, index) => {
    try {
      const value = await call(index) as string | Buffer
      return { index, value, ms: performance.now() - started }
    } catch (err) {
      return { index, code: (err as LwscError).code, url: (err as LwscError).url, ms: performance.now() - started }
    }
  }))
}

function tally (results: Settled[]): string {
  const counts = new Map<string, number>()
  for (const r of results) counts.set(r.code ?? 'reply', (counts.get(r.code ?? 'reply') ?? 0) + 1)
  return [...counts].map(([k, n]) => `${k}×${n}`).join(', ')
}

describe('lwsc against a target that is down', () => {
  test('200 requests and 200 notifications to a refused port: typed errors and quiet notifications, all within the timeouts', async (t) => {
    const url = `ws://127.0.0.1:${await freePort()}/`
    const client = new LwscClient(FAST)
    try {
      const requests = settleAll(200, async (i) => await client.request(url, `r${i}`))
      const notifies = settleAll(200, async (i) => { await client.notify(url, `n${i}`) })
      const [r, n] = await within(Promise.all([requests, notifies]), TIMEOUT_INIT + LATE, () => 'calls to a refused port still pending')
      for (const x of r) assert.deepEqual([x.code, x.url], ['FST_SIPWS_LWSC_CONNECTION_FAILED', url])
      for (const x of n) assert.equal(x.code, undefined, 'a notification never rejects for a dead target')
      const stats = client.stats()
      assert.deepEqual([stats.errors, stats.failedNotifies, stats.connections], [200, 200, 0])
      t.diagnostic(`refused port: 400 calls settled in ${Math.max(...r.map((x) => x.ms), ...n.map((x) => x.ms)).toFixed(0)} ms`)
    } finally { await client.close() }
  })

  test('50 requests to a black hole (TCP accepted, no handshake answer) fail with the connect timeout', async (t) => {
    const silent = await startSilentTcp()
    const client = new LwscClient(FAST)
    try {
      const r = await within(settleAll(50, async (i) => await client.request(silent.url, `r${i}`)), TIMEOUT_INIT + 2 * LATE, () => 'requests to a black hole still pending')
      for (const x of r) {
        assert.deepEqual([x.code, x.url], ['FST_SIPWS_LWSC_CONNECT_TIMEOUT', silent.url])
        assert.ok(x.ms >= TIMEOUT_INIT - 25 && x.ms < TIMEOUT_INIT + LATE, `failed after ${x.ms.toFixed(0)} ms`)
      }
      t.diagnostic(`black hole: 50 requests failed after ${Math.min(...r.map((x) => x.ms)).toFixed(0)}-${Math.max(...r.map((x) => x.ms)).toFixed(0)} ms`)
    } finally { await client.close(); await silent.close() }
  })
})

describe('lwsc against a target that misbehaves', () => {
  test(`closing mid-request: exactly the requests it dropped fail, every other gets its own reply (seed ${SEED})`, async (t) => {
    const peer = await startPeer({
      onMessage: (ws, data) => {
        const text = data.toString()
        if (text.startsWith('kill')) ws.terminate()
        else ws.send(`re:${text}`)
      }
    })
    const client = new LwscClient(FAST)
    const rng = new Rng(SEED)
    const kill = Array.from({ length: 300 }, () => rng.bool(0.2))
    try {
      const results = await within(settleAll(300, async (i) => await client.request(peer.url, `${kill[i] ? 'kill' : 'req'}:${i}`)), 20_000, () => 'requests still pending')
      for (const r of results) {
        if (kill[r.index]) assert.deepEqual([r.code, r.url], ['FST_SIPWS_LWSC_CONNECTION_FAILED', peer.url], `request ${r.index}`)
        else assert.equal(r.value, `re:req:${r.index}`, `request ${r.index}: ${String(r.code)}`)
      }
      assert.ok(peer.maxOpen <= FAST.poolSize, `${peer.maxOpen} connections at once`)
      t.diagnostic(`closing mid-request: ${tally(results)}; ${peer.handshakes.length} connections opened`)
    } finally { await client.close(); await peer.close() }
  })

  test(`answering slowly: replies within timeoutRead arrive, later ones time out and never reach another request (seed ${SEED})`, async (t) => {
    const peer = await startPeer({
      onMessage: (ws, data) => {
        const [, index, delay] = data.toString().split(':')
        setTimeout(() => { if (ws.readyState === ws.OPEN) ws.send(`re:${index}`) }, Number(delay))
      }
    })
    // Every late reply costs its connection, so a larger pool keeps the queue moving.
    const client = new LwscClient({ ...FAST, poolSize: 8 })
    const rng = new Rng(SEED ^ 1)
    // Clear of the timeout either way, so which side of it a reply falls on is not up to the scheduler.
    const delays = Array.from({ length: 100 }, () => rng.bool(0.6) ? rng.int(0, 100) : rng.int(TIMEOUT_READ + 200, TIMEOUT_READ + 400))
    try {
      const bound = Math.ceil(100 / 8) * (TIMEOUT_READ + 100) + LATE
      const results = await within(settleAll(100, async (i) => await client.request(peer.url, `slow:${i}:${delays[i]}`)), bound, () => 'requests still pending')
      for (const r of results) {
        if (delays[r.index] < TIMEOUT_READ) assert.equal(r.value, `re:${r.index}`, `request ${r.index} (reply after ${delays[r.index]} ms): ${String(r.code)}`)
        else assert.deepEqual([r.code, r.url], ['FST_SIPWS_LWSC_READ_TIMEOUT', peer.url], `request ${r.index} (reply after ${delays[r.index]} ms)`)
      }
      t.diagnostic(`slow target: ${tally(results)} in ${Math.max(...results.map((r) => r.ms)).toFixed(0)} ms (bound ${bound} ms)`)
    } finally { await client.close(); await peer.close() }
  })

  test(`flooding replies: each request answered several times over in one write; every caller still gets its own reply (seed ${SEED})`, async (t) => {
    const rng = new Rng(SEED ^ 2)
    let extra = 0
    const peer = await startPeer({
      onMessage: (ws, data) => {
        const reply = frame(1, `re:${data.toString()}`, { mask: false })
        const copies = rng.int(1, 20)
        extra += copies
        // The reply and its copies in one write, so they reach the client in one read, back to back.
        const socket = (ws as unknown as { _socket: net.Socket })._socket
        socket.write(Buffer.concat(Array.from({ length: copies + 1 }, () => reply)))
      }
    })
    // One connection, so every request but the first waits in the queue for the one before it.
    const client = new LwscClient({ ...FAST, poolSize: 1 })
    try {
      const results = await within(settleAll(200, async (i) => await client.request(peer.url, `q${i}`)), 10_000, () => 'requests still pending')
      for (const r of results) assert.equal(r.value, `re:q${r.index}`, `request ${r.index} got ${String(r.value ?? r.code)}`)
      assert.equal(client.stats().dropped, extra, 'every copy was dropped')
      t.diagnostic(`flooding target: 200 requests, ${extra} extra replies, all dropped`)
    } finally { await client.close(); await peer.close() }
  })

  test('going away mid-traffic: every pending call settles with a reply or a typed error; close() leaves nothing behind', async (t) => {
    const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
    let answered = 0
    let peerGone: () => void = () => {}
    const down = new Promise<void>((resolve) => { peerGone = resolve })
    const sockets: WebSocket[] = []
    const peer = await startPeer({
      onMessage: (ws, data) => {
        sockets.push(ws)
        setTimeout(() => {
          if (ws.readyState !== ws.OPEN) return
          ws.send(`re:${data.toString()}`)
          if (++answered === 20) peerGone()
        }, 20)
      }
    })
    const client = new LwscClient(FAST)
    try {
      const pending = settleAll(200, async (i) => await client.request(peer.url, `x${i}`))
      await down
      await peer.close()
      const results = await within(pending, TIMEOUT_INIT + TIMEOUT_READ + 2 * LATE, () => 'calls still pending after the target went away')
      const allowed = new Set(['FST_SIPWS_LWSC_CONNECTION_FAILED', 'FST_SIPWS_LWSC_CONNECT_TIMEOUT', 'FST_SIPWS_LWSC_READ_TIMEOUT'])
      for (const r of results) {
        if (r.code === undefined) assert.equal(r.value, `re:x${r.index}`)
        else assert.ok(allowed.has(r.code) && r.url === peer.url, `request ${r.index}: ${r.code}`)
      }
      assert.ok(results.filter((r) => r.code === undefined).length >= 20)
      t.diagnostic(`target gone: ${tally(results)}`)
    } finally {
      await client.close()
      await peer.close()
    }
    const stats = client.stats()
    assert.equal(stats.connections + stats.connecting + stats.queued + stats.inFlight + stats.endpoints, 0)
    const timersAfter = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
    assert.ok(timersAfter <= timersBefore, `timers: ${timersBefore} before, ${timersAfter} after`)
  })
})
