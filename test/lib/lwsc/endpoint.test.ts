import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import type WebSocket from 'ws'
import { LwscClient } from '../../../lib/lwsc'
import { Endpoint } from '../../../lib/lwsc/endpoint'
import type { LwscError } from '../../../lib/lwsc/error-url'
import { Job } from '../../../lib/lwsc/job'
import type { LwscOptions } from '../../../lib/options'
import { freePort, lwscContext, recordingLogger, startPeer, startSilentTcp } from '../../helpers/lwsc'
import { until, within } from '../../helpers/pool'

const FAST = { timeoutInit: 300, timeoutRead: 2000, keepaliveInterval: 0, reconnectBackoffMin: 20, reconnectBackoffMax: 100 }

async function closeCode (ws: WebSocket): Promise<number> {
  const [code] = await once(ws, 'close') as [number]
  return code
}

describe('lwsc pool lifetime', () => {
  test('an idle pooled connection closes with 1000 after idleTimeout; its endpoint goes; the next call reconnects', async (t) => {
    const peer = await startPeer()
    const client = new LwscClient({ ...FAST, idleTimeout: 300 })
    t.after(async () => { await client.close(); await peer.close() })

    assert.equal(await client.request(peer.url, 'a'), 'a')
    const answered = performance.now()
    assert.equal(await closeCode(peer.sockets[0]), 1000)
    const idle = performance.now() - answered
    assert.ok(idle >= 280 && idle < 3000, `closed after ${Math.round(idle)} ms idle`)
    assert.deepEqual([client.stats().connections, client.stats().endpoints], [0, 0])

    assert.equal(await client.request(peer.url, 'b'), 'b')
    assert.deepEqual([peer.handshakes.length, client.stats().opened, client.stats().errors], [2, 2, 0])
  })

  test('a connection busy past idleTimeout is not closed under its request; idle time counts from the reply', async (t) => {
    const peer = await startPeer({ onMessage: (ws, data) => { setTimeout(() => { ws.send(data.toString()) }, 600) } })
    const client = new LwscClient({ ...FAST, idleTimeout: 200 })
    t.after(async () => { await client.close(); await peer.close() })

    assert.equal(await client.request(peer.url, 'slow'), 'slow')
    const answered = performance.now()
    const [conn] = peer.sockets
    assert.equal(conn.readyState, conn.OPEN, 'still open after 600 ms busy')
    assert.equal(await closeCode(conn), 1000)
    const idle = performance.now() - answered
    assert.ok(idle >= 180, `closed ${Math.round(idle)} ms after the reply`)
    assert.equal(peer.handshakes.length, 1)
  })

  test('endpoints past maxEndpoints: the least recently used idle one is evicted and its connection closed', async (t) => {
    const peer = await startPeer()
    const client = new LwscClient({ ...FAST, maxEndpoints: 3 })
    t.after(async () => { await client.close(); await peer.close() })
    const url = (n: number): string => `${peer.url}?n=${n}`

    for (const n of [1, 2, 3]) assert.equal(await client.request(url(n), `m${n}`), `m${n}`)
    assert.equal(client.stats().endpoints, 3)
    assert.equal(await client.request(url(1), 'again'), 'again', 'n=1 is now the most recently used')
    const second = closeCode(peer.sockets[1])

    assert.equal(await client.request(url(4), 'm4'), 'm4')
    assert.equal(await second, 1000, 'n=2, the least recently used, was closed')
    assert.equal(client.stats().endpoints, 3)
    for (const n of [1, 3, 4]) assert.equal(await client.request(url(n), 'still'), 'still')
    assert.equal(peer.handshakes.length, 4, 'n=1, 3 and 4 kept their connections')
    assert.equal(await client.request(url(2), 'back'), 'back')
    assert.equal(peer.handshakes.length, 5, 'n=2 connects anew')
    assert.equal(client.stats().endpoints, 3)
  })

  test('endpoints that keep failing are evicted too: the cache stays bounded with keepalive off', async (t) => {
    const port = await freePort()
    const client = new LwscClient({ ...FAST, maxEndpoints: 2 })
    t.after(async () => { await client.close() })
    for (let n = 0; n < 10; n++) {
      await assert.rejects(client.request(`ws://127.0.0.1:${port}/?n=${n}`, 'x'), { code: 'FST_SIPWS_LWSC_CONNECTION_FAILED' })
      assert.ok(client.stats().endpoints <= 2, `${client.stats().endpoints} endpoints after ${n + 1} targets`)
    }
    assert.equal(client.stats().connectFailures, 10)
  })

  test('an endpoint with a request in flight is not evicted: the request still gets its reply', async (t) => {
    const peer = await startPeer({ onMessage: (ws, data) => { setTimeout(() => { ws.send(data.toString()) }, data.toString() === 'slow' ? 300 : 0) } })
    const client = new LwscClient({ ...FAST, maxEndpoints: 1 })
    t.after(async () => { await client.close(); await peer.close() })

    // n=1 has its job from here on (queued, then in flight), so n=2 cannot evict it.
    const slow = client.request(`${peer.url}?n=1`, 'slow')
    assert.equal(await client.request(`${peer.url}?n=2`, 'fast'), 'fast')
    assert.equal(await slow, 'slow')
    assert.equal(client.stats().errors, 0)
    // Idle now: the next new endpoint evicts down to the bound.
    assert.equal(await client.request(`${peer.url}?n=3`, 'third'), 'third')
    assert.equal(client.stats().endpoints, 1)
  })
})

describe('lwsc statistics', () => {
  test('timeouts counts timeouts that fired: one connect timeout, however many requests waited on it', async (t) => {
    const silent = await startSilentTcp()
    const client = new LwscClient({ ...FAST, poolSize: 1 })
    t.after(async () => { await client.close(); await silent.close() })

    const results = await Promise.allSettled(['a', 'b', 'c'].map(async (x) => await client.request(silent.url, x)))
    assert.deepEqual(results.map((r) => r.status === 'rejected' ? (r.reason as { code: string }).code : 'fulfilled'), Array(3).fill('FST_SIPWS_LWSC_CONNECT_TIMEOUT'))
    const stats = client.stats()
    assert.deepEqual([stats.timeouts, stats.errors, stats.connectFailures, silent.accepted()], [1, 3, 1, 1])
  })
})

describe('Endpoint, one target\'s pool, on a context of its own', () => {
  interface Under {
    endpoint: Endpoint
    ctx: ReturnType<typeof lwscContext>
    log: ReturnType<typeof recordingLogger>
    released: Endpoint[]
    request: (data: string) => Promise<string | Buffer | undefined>
    notify: (data: string) => Promise<string | Buffer | undefined>
  }

  function endpointFor (url: string, options: LwscOptions = {}): Under {
    const log = recordingLogger()
    const ctx = lwscContext({ ...FAST, ...options }, log)
    const released: Endpoint[] = []
    const endpoint = new Endpoint(url, 'kmsg', ctx, (e) => { released.push(e) })
    const submit = (expectsReply: boolean) => async (data: string): Promise<string | Buffer | undefined> => await new Promise((resolve, reject) => { endpoint.submit(new Job(data, expectsReply, resolve, reject)) })
    return { endpoint, ctx, log, released, request: submit(true), notify: submit(false) }
  }
  const gauges = (e: Endpoint): number[] => [e.openCount, e.connectingCount, e.inFlight, e.queued]

  test('grows to poolSize for waiting jobs, no further; each connection takes the queue in turn', async (t) => {
    let answer: () => void = () => {}
    const go = new Promise<void>((resolve) => { answer = resolve })
    const peer = await startPeer({ onMessage: (ws, data) => { void go.then(() => { ws.send(`re:${data.toString()}`) }) } })
    const u = endpointFor(peer.url, { poolSize: 2, queueSize: 10 })
    t.after(async () => { await u.endpoint.close(); await peer.close() })
    const replies = Promise.all(['a', 'b', 'c', 'd', 'e'].map(u.request))
    assert.deepEqual(gauges(u.endpoint), [0, 2, 0, 5], 'two connecting for five jobs')
    await until(() => u.endpoint.inFlight === 2, 5000, () => 'two requests in flight', 0)
    assert.deepEqual(gauges(u.endpoint), [2, 0, 2, 3])
    assert.equal(u.endpoint.evictable, false, 'busy')
    answer()
    assert.deepEqual(await replies, ['re:a', 're:b', 're:c', 're:d', 're:e'])
    assert.deepEqual([peer.maxOpen, peer.handshakes.length], [2, 2])
    assert.deepEqual(gauges(u.endpoint), [2, 0, 0, 0])
    assert.equal(u.endpoint.evictable, true, 'open, idle and nothing waiting')
    assert.deepEqual([u.ctx.counters.replies, u.ctx.counters.opened, u.released.length], [5, 2, 0])
  })

  test('the queue beyond the pool is bounded: a request past it fails at once, a notification resolves and is counted', async (t) => {
    const peer = await startPeer({ onMessage: () => {} })
    const u = endpointFor(peer.url, { poolSize: 1, queueSize: 1, timeoutRead: 10_000 })
    t.after(async () => { await u.endpoint.close(); await peer.close() })
    // Before the connection opens, the job it will take does not count against queueSize.
    const waiting = [u.request('1'), u.request('2')].map(async (p) => await p.catch((err: LwscError) => err.code))
    await assert.rejects(u.request('3'), (err: LwscError) => err.code === 'FST_SIPWS_LWSC_QUEUE_FULL' && /\(2 waiting\)/.test(err.message))
    await until(() => u.endpoint.openCount === 1, 5000, () => 'the connection to open', 0)
    assert.deepEqual(gauges(u.endpoint), [1, 0, 1, 1])
    await assert.rejects(u.request('4'), { code: 'FST_SIPWS_LWSC_QUEUE_FULL' })
    assert.equal(await u.notify('n'), undefined)
    assert.deepEqual([u.ctx.counters.errors, u.ctx.counters.failedNotifies], [2, 1])
    assert.deepEqual(u.log.lines.filter((l) => l.level === 'warn').map((l) => l.msg), ['lwsc: notification not delivered'])
    await u.endpoint.close()
    assert.deepEqual(await Promise.all(waiting), ['FST_SIPWS_LWSC_CLOSED', 'FST_SIPWS_LWSC_CLOSED'], 'close() rejects what waited and what was in flight')
  })

  test('a target that refuses: waiting jobs share the failure, then one probe at a time after the backoff; stale once it has run out', async (t) => {
    const BACKOFF = 300
    const url = `ws://127.0.0.1:${await freePort()}/`
    // One connection: every job waits on the same attempt.
    const u = endpointFor(url, { poolSize: 1, reconnectBackoffMin: BACKOFF, reconnectBackoffMax: BACKOFF })
    t.after(async () => { await u.endpoint.close() })
    const first = await Promise.allSettled([u.request('a'), u.request('b'), u.notify('n')])
    assert.deepEqual(first.map((r) => r.status === 'rejected' ? (r.reason as LwscError).code : r.value), ['FST_SIPWS_LWSC_CONNECTION_FAILED', 'FST_SIPWS_LWSC_CONNECTION_FAILED', undefined])
    assert.deepEqual([u.ctx.counters.connectFailures, u.ctx.counters.errors, u.ctx.counters.failedNotifies], [1, 2, 1])
    assert.deepEqual(u.log.lines.filter((l) => l.level === 'warn').map((l) => [l.msg, (l.obj as { count?: number }).count]), [['lwsc: notifications not delivered', 1]])
    const failedAt = performance.now()
    assert.equal(u.released.length, 0, 'kept while its backoff runs: the next caller must wait for it too')
    assert.equal(u.endpoint.stale(Date.now()), false)
    assert.equal(u.endpoint.stale(Date.now() + BACKOFF + 1), true)

    // Submitted during the backoff: it waits for the next probe, which fails too.
    await assert.rejects(u.request('c'), { code: 'FST_SIPWS_LWSC_CONNECTION_FAILED' })
    const waited = performance.now() - failedAt
    assert.ok(waited >= BACKOFF - 50, `the probe came ${waited.toFixed(0)} ms after the failure`)
    assert.equal(u.ctx.counters.connectFailures, 2)
  })

  test('a connection the peer closes leaves the pool; with nothing left, the endpoint asks to be forgotten', async (t) => {
    const peer = await startPeer()
    const u = endpointFor(peer.url)
    t.after(async () => { await u.endpoint.close(); await peer.close() })
    assert.equal(await u.request('x'), 'x')
    peer.sockets[0].close(1001)
    await until(() => u.released.length > 0, 5000, () => 'the release', 10)
    assert.deepEqual(u.released, [u.endpoint])
    assert.deepEqual(gauges(u.endpoint), [0, 0, 0, 0])
    assert.equal(u.endpoint.stale(Date.now()), true)
  })

  test('retire closes idle connections with 1000 and leaves busy ones alone', async (t) => {
    let holding: WebSocket | null = null
    const peer = await startPeer({ onMessage: (ws, data) => { if (data.toString() === 'hold') holding = ws; else ws.send(data.toString()) } })
    const u = endpointFor(peer.url, { poolSize: 2, timeoutRead: 10_000 })
    t.after(async () => { await u.endpoint.close(); await peer.close() })
    assert.equal(await u.request('x'), 'x')
    const held = u.request('hold').catch((err: LwscError) => err.code)
    assert.equal(await u.request('y'), 'y', 'on a second connection')
    assert.equal(peer.sockets.length, 2)
    const idle = peer.sockets.find((ws) => ws !== holding) as WebSocket
    assert.ok(holding !== null && idle !== undefined)
    assert.equal(u.endpoint.evictable, false)
    const idleClosed = once(idle, 'close')
    u.endpoint.retire()
    const [code] = await within(idleClosed, 5000, () => 'the idle connection to close') as [number]
    assert.equal(code, 1000)
    assert.equal((holding as WebSocket).readyState, (holding as WebSocket).OPEN, 'the connection with a request in flight stays')
    assert.deepEqual(gauges(u.endpoint), [1, 0, 1, 0])
    await u.endpoint.close()
    assert.equal(await held, 'FST_SIPWS_LWSC_CLOSED')
  })
})
