import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import type WebSocket from 'ws'
import { LwscClient } from '../../../lib/lwsc'
import { freePort, startPeer, startSilentTcp } from '../../helpers/lwsc'

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
