import assert from 'node:assert/strict'
import { once } from 'node:events'
import type net from 'node:net'
import { after, describe, test } from 'node:test'
import { expectTypeOf } from 'expect-type'
import WebSocket from 'ws'
import type { LwscError, LwscStats } from '../../../lib/lwsc'
import { LwscClient } from '../../../lib/lwsc/client'
import { frame } from '../../helpers/frames'
import { until, within } from '../../helpers/pool'
import { freePort, recordingLogger, selfSignedCert, startHttpRefuser, startPeer, startSilentTcp } from '../../helpers/lwsc'

const unhandled: unknown[] = []
const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
process.on('unhandledRejection', onUnhandled)
after(() => {
  process.off('unhandledRejection', onUnhandled)
  assert.deepEqual(unhandled, [], 'no unhandled rejections')
})

// Short timeouts keep the suite fast; keepalive off unless a test is about it.
const FAST = { timeoutInit: 300, timeoutRead: 200, keepaliveInterval: 0, reconnectBackoffMin: 20, reconnectBackoffMax: 100 }

function code (expected: string, url: string) {
  return (err: unknown): true => {
    assert.ok(err instanceof Error, 'an Error')
    assert.equal((err as LwscError).code, expected, `${String((err as Error).message)}`)
    assert.equal((err as LwscError).url, url)
    return true
  }
}

describe('lwsc request', () => {
  test('echo: text gives a string, binary a Buffer, over one reused connection', async (t) => {
    const peer = await startPeer()
    const client = new LwscClient(FAST)
    t.after(async () => { await client.close(); await peer.close() })

    assert.equal(await client.request(peer.url, 'hello'), 'hello')
    const bin = await client.request(peer.url, Buffer.from([0, 1, 2, 255]))
    assert.ok(Buffer.isBuffer(bin))
    assert.deepEqual(bin, Buffer.from([0, 1, 2, 255]))
    for (let i = 0; i < 20; i++) assert.equal(await client.request(peer.url, `m${i}`), `m${i}`)

    assert.equal(peer.handshakes.length, 1, 'sequential requests reuse one connection')
    const [hs] = peer.handshakes
    assert.equal(hs.protocol, 'kmsg', 'the default sub-protocol is offered')
    assert.equal(hs.host, `127.0.0.1:${peer.port}`, 'Host is the target')
    assert.equal(hs.origin, undefined, 'no Origin unless configured')
    const stats = client.stats()
    assert.equal(stats.connections, 1)
    assert.equal(stats.requests, 22)
    assert.equal(stats.replies, 22)
    assert.equal(stats.opened, 1)
  })

  test('requestProto offers the given sub-protocol on its own connection; origin and headers are sent', async (t) => {
    const peer = await startPeer()
    const client = new LwscClient({ ...FAST, origin: 'https://app.example', headers: { 'x-token': 'abc' } })
    t.after(async () => { await client.close(); await peer.close() })

    assert.equal(await client.requestProto(peer.url, 'sip', 'a'), 'a')
    assert.equal(await client.request(peer.url, 'b'), 'b')
    assert.deepEqual(peer.handshakes.map((h) => h.protocol).sort(), ['kmsg', 'sip'])
    assert.equal(peer.handshakes[0].origin, 'https://app.example')
    assert.equal(peer.handshakes[0].headers['x-token'], 'abc')
    assert.equal(client.stats().endpoints, 2)
  })

  test('a reply arriving after the read timeout is dropped, never given to the next request', async (t) => {
    let lateSent: () => void = () => {}
    const lateWasSent = new Promise<void>((resolve) => { lateSent = resolve })
    const peer = await startPeer({
      onMessage: (ws, data) => {
        const text = data.toString()
        if (text === 'slow') {
          setTimeout(() => { ws.send('reply:slow', () => { lateSent() }) }, 400)
        } else {
          ws.send('reply:' + text)
        }
      }
    })
    // One connection: had it been kept, the next request would be sent on it and read the late reply.
    const client = new LwscClient({ ...FAST, poolSize: 1 })
    t.after(async () => { await client.close(); await peer.close() })

    const started = Date.now()
    await assert.rejects(client.request(peer.url, 'slow'), code('FST_SIPWS_LWSC_READ_TIMEOUT', peer.url))
    assert.ok(Date.now() - started >= 190, 'not before timeoutRead')
    const next = client.request(peer.url, 'fast')
    assert.equal(await next, 'reply:fast')
    await lateWasSent
    assert.equal(await client.request(peer.url, 'again'), 'reply:again')
    assert.equal(client.stats().timeouts, 1)
    assert.equal(client.stats().errors, 1)
    assert.equal(peer.handshakes.length, 2, 'the timed-out connection was replaced')
  })

  // The client relies on ws emitting every message of one read before control returns
  // (allowSynchronousEvents); it sets that after the user's `tls` options, so they cannot turn it off.
  for (const [also, tls] of [['', undefined], [', whatever the tls options say', { allowSynchronousEvents: false }]] as const) {
    test(`a reply sent twice in one write: the copy is dropped, the next request waiting gets its own reply${also}`, async (t) => {
      const peer = await startPeer({
        onMessage: (ws, data) => {
          const reply = frame(1, `re:${data.toString()}`, { mask: false })
          ;(ws as unknown as { _socket: net.Socket })._socket.write(Buffer.concat([reply, reply]))
        }
      })
      // One connection: b and c wait in the queue and go out right after the reply before them.
      const client = new LwscClient({ ...FAST, poolSize: 1, tls: tls as never })
      t.after(async () => { await client.close(); await peer.close() })

      assert.deepEqual(await Promise.all(['a', 'b', 'c'].map(async (x) => await client.request(peer.url, x))), ['re:a', 're:b', 're:c'])
      assert.equal(client.stats().dropped, 3)
      assert.equal(peer.handshakes.length, 1)
    })
  }

  test('no reply: read timeout error with its own code', async (t) => {
    const peer = await startPeer({ onMessage: () => {} })
    const client = new LwscClient(FAST)
    t.after(async () => { await client.close(); await peer.close() })

    const started = Date.now()
    await assert.rejects(client.request(peer.url, 'anyone?'), (err: unknown) => {
      assert.ok(err instanceof Error)
      assert.equal((err as LwscError).code, 'FST_SIPWS_LWSC_READ_TIMEOUT')
      assert.equal((err as LwscError).url, peer.url)
      assert.match(err.message, /within 200 ms/)
      return true
    })
    const elapsed = Date.now() - started
    assert.ok(elapsed >= 190 && elapsed < 2000, `took ${elapsed} ms`)
  })

  test('the server closing mid-request rejects with a connection error; the next request reconnects', async (t) => {
    const peer = await startPeer({
      onMessage: (ws, data) => {
        const text = data.toString()
        if (text === 'drop') ws.terminate()
        else if (text === 'bye') ws.close(1001, 'going')
        else ws.send(text)
      }
    })
    const client = new LwscClient(FAST)
    t.after(async () => { await client.close(); await peer.close() })

    await assert.rejects(client.request(peer.url, 'drop'), code('FST_SIPWS_LWSC_CONNECTION_FAILED', peer.url))
    assert.equal(await client.request(peer.url, 'ok'), 'ok')
    await assert.rejects(client.request(peer.url, 'bye'), (err: unknown) => {
      code('FST_SIPWS_LWSC_CONNECTION_FAILED', peer.url)(err)
      assert.match((err as Error).message, /1001/)
      return true
    })
    assert.equal(await client.request(peer.url, 'ok2'), 'ok2')
    assert.equal(peer.handshakes.length, 3)
  })

  test('refused port: typed connection error; retries wait for the backoff', async (t) => {
    const url = `ws://127.0.0.1:${await freePort()}/`
    const client = new LwscClient({ ...FAST, reconnectBackoffMin: 150, reconnectBackoffMax: 150 })
    t.after(async () => { await client.close() })

    await assert.rejects(client.request(url, 'x'), (err: unknown) => {
      code('FST_SIPWS_LWSC_CONNECTION_FAILED', url)(err)
      assert.match((err as Error).message, /ECONNREFUSED/)
      return true
    })
    const started = Date.now()
    await assert.rejects(client.request(url, 'y'), code('FST_SIPWS_LWSC_CONNECTION_FAILED', url))
    assert.ok(Date.now() - started >= 100, 'the second attempt waited for the backoff')
    const stats = client.stats()
    assert.equal(stats.connectFailures, 2)
    assert.equal(stats.errors, 2)
    assert.equal(stats.connections, 0)
  })

  test('a handshake that never completes: connect timeout error with its own code', async (t) => {
    const silent = await startSilentTcp()
    const client = new LwscClient(FAST)
    t.after(async () => { await client.close(); await silent.close() })

    const started = Date.now()
    await assert.rejects(client.request(silent.url, 'x'), (err: unknown) => {
      code('FST_SIPWS_LWSC_CONNECT_TIMEOUT', silent.url)(err)
      assert.match((err as Error).message, /300 ms/)
      return true
    })
    assert.ok(Date.now() - started >= 290)
    assert.equal(client.stats().timeouts, 1)
    assert.equal(silent.accepted(), 1)
  })
})

describe('lwsc sub-protocol refusal', () => {
  test('a server that selects no sub-protocol', async (t) => {
    const peer = await startPeer({ handleProtocols: () => false })
    const client = new LwscClient(FAST)
    t.after(async () => { await client.close(); await peer.close() })
    await assert.rejects(client.request(peer.url, 'x'), code('FST_SIPWS_LWSC_PROTOCOL_REFUSED', peer.url))
  })

  test('a server that selects another sub-protocol', async (t) => {
    const peer = await startPeer({ handleProtocols: () => 'sip' })
    const client = new LwscClient(FAST)
    t.after(async () => { await client.close(); await peer.close() })
    await assert.rejects(client.requestProto(peer.url, 'msrp', 'x'), (err: unknown) => {
      code('FST_SIPWS_LWSC_PROTOCOL_REFUSED', peer.url)(err)
      assert.match((err as Error).message, /"msrp"/)
      return true
    })
  })

  test('a 400 naming the supported sub-protocols is a sub-protocol refusal; a bare 400 a connection error', async (t) => {
    const naming = await startHttpRefuser(400, { 'Sec-WebSocket-Protocol': 'sip, msrp' })
    const bare = await startHttpRefuser(400)
    const client = new LwscClient(FAST)
    t.after(async () => { await client.close(); await naming.close(); await bare.close() })
    await assert.rejects(client.request(naming.url, 'x'), code('FST_SIPWS_LWSC_PROTOCOL_REFUSED', naming.url))
    await assert.rejects(client.request(bare.url, 'x'), (err: unknown) => {
      code('FST_SIPWS_LWSC_CONNECTION_FAILED', bare.url)(err)
      assert.match((err as Error).message, /400 Bad Request/)
      return true
    })
  })
})

describe('lwsc wss', () => {
  test('verifies the server certificate: ok with its CA, a typed error without, unsafe switch works', async (t) => {
    const tls = await selfSignedCert()
    const peer = await startPeer({ tls })
    const trusting = new LwscClient({ ...FAST, timeoutInit: 2000, tls: { ca: tls.cert } })
    const strict = new LwscClient({ ...FAST, timeoutInit: 2000 })
    const unsafe = new LwscClient({ ...FAST, timeoutInit: 2000, tls: { rejectUnauthorized: false } })
    t.after(async () => { await Promise.all([trusting.close(), strict.close(), unsafe.close()]); await peer.close() })

    assert.ok(peer.url.startsWith('wss://'))
    assert.equal(await trusting.request(peer.url, 'secure'), 'secure')
    await assert.rejects(strict.request(peer.url, 'x'), (err: unknown) => {
      code('FST_SIPWS_LWSC_CONNECTION_FAILED', peer.url)(err)
      assert.match(String(((err as Error).cause as { code?: string }).code), /SELF_SIGNED|UNABLE_TO_VERIFY/)
      return true
    })
    assert.equal(await unsafe.request(peer.url, 'risky'), 'risky')
  })
})

describe('lwsc pool and queue', () => {
  test('200 parallel requests over a pool of 4: each gets its own reply; never more than 4 connections', async (t) => {
    const peer = await startPeer({
      onMessage: (ws, data) => { setTimeout(() => { ws.send('re:' + data.toString()) }, Math.floor(Math.random() * 5)) }
    })
    const client = new LwscClient({ ...FAST, timeoutRead: 5000, poolSize: 4 })
    t.after(async () => { await client.close(); await peer.close() })

    const replies = await Promise.all(Array.from({ length: 200 }, async (_, i) => await client.request(peer.url, `req-${i}`)))
    replies.forEach((reply, i) => { assert.equal(reply, `re:req-${i}`) })
    assert.ok(peer.maxOpen <= 4, `max ${peer.maxOpen} open`)
    assert.ok(peer.handshakes.length <= 4, `${peer.handshakes.length} handshakes`)
    assert.equal(client.stats().replies, 200)
    assert.equal(client.stats().queued, 0)
  })

  test('a full queue rejects at once; close() rejects what waits with LwscClosedError', async (t) => {
    const peer = await startPeer({ onMessage: () => {} })
    const client = new LwscClient({ ...FAST, timeoutRead: 10000, poolSize: 1, queueSize: 2 })
    t.after(async () => { await client.close(); await peer.close() })

    const waiting = [client.request(peer.url, '1'), client.request(peer.url, '2'), client.request(peer.url, '3')]
    const settled = Promise.allSettled(waiting)
    await assert.rejects(client.request(peer.url, '4'), (err: unknown) => {
      code('FST_SIPWS_LWSC_QUEUE_FULL', peer.url)(err)
      assert.match((err as Error).message, /3 waiting/)
      return true
    })
    // A notification is not rejected for a full queue: it resolves and is counted.
    await client.notify(peer.url, 'n')
    assert.equal(client.stats().failedNotifies, 1)
    assert.equal(client.stats().queued, 3)

    await client.close()
    for (const result of await settled) {
      assert.equal(result.status, 'rejected')
      code('FST_SIPWS_LWSC_CLOSED', peer.url)(result.reason)
    }
  })
})

describe('lwsc notify', () => {
  test('resolves when written; messages keep their order and frame type', async (t) => {
    const got: Array<{ text: string, binary: boolean }> = []
    let allIn: () => void = () => {}
    const done = new Promise<void>((resolve) => { allIn = resolve })
    const peer = await startPeer({
      onMessage: (_ws, data, binary) => {
        got.push({ text: data.toString(), binary })
        if (got.length === 51) allIn()
      }
    })
    const client = new LwscClient(FAST)
    t.after(async () => { await client.close(); await peer.close() })

    const sends: Array<Promise<void>> = []
    for (let i = 0; i < 50; i++) sends.push(client.notify(peer.url, `n${i}`))
    sends.push(client.notifyProto(peer.url, 'kmsg', Buffer.from('bin')))
    await Promise.all(sends)
    await done
    assert.deepEqual(got.slice(0, 50).map((m) => m.text), Array.from({ length: 50 }, (_, i) => `n${i}`))
    assert.ok(got.slice(0, 50).every((m) => !m.binary))
    assert.deepEqual(got[50], { text: 'bin', binary: true })
    assert.equal(client.stats().notifies, 51)
    assert.equal(client.stats().failedNotifies, 0)
  })

  test('notifyProto honours the sub-protocol', async (t) => {
    const peer = await startPeer({ onMessage: () => {} })
    const client = new LwscClient(FAST)
    t.after(async () => { await client.close(); await peer.close() })
    await client.notifyProto(peer.url, 'json', '{}')
    assert.deepEqual(peer.handshakes.map((h) => h.protocol), ['json'])
  })

  test('a notification to a dead target resolves, is counted and logged, and never rejects', async (t) => {
    const url = `ws://127.0.0.1:${await freePort()}/`
    const log = recordingLogger()
    const client = new LwscClient(FAST, log)
    t.after(async () => { await client.close() })

    // Fire-and-forget on purpose: a rejection here would surface as an unhandled rejection.
    void client.notify(url, 'lost 1')
    await client.notify(url, 'lost 2')
    await client.notifyProto(url, 'sip', 'lost 3')
    const stats = client.stats()
    assert.equal(stats.notifies, 3)
    assert.equal(stats.failedNotifies, 3)
    assert.ok(log.lines.some((l) => l.level === 'warn' && (l.obj as { url?: string }).url === url))
  })
})

describe('lwsc lifecycle', () => {
  test('close() closes every socket, clears timers, rejects in-flight and later calls; idempotent', async (t) => {
    const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
    const peerA = await startPeer()
    const peerB = await startPeer({ onMessage: () => {} })
    const client = new LwscClient({ ...FAST, timeoutRead: 10000, keepaliveInterval: 1000 })
    t.after(async () => { await client.close(); await peerA.close(); await peerB.close() })

    await Promise.all(Array.from({ length: 8 }, async (_, i) => await client.request(peerA.url, `x${i}`)))
    await client.requestProto(peerA.url, 'sip', 'y')
    const inFlight = client.request(peerB.url, 'never answered')
    const settled = Promise.allSettled([inFlight])
    await once(peerB.wss, 'connection')
    assert.ok(client.stats().connections >= 3)

    const closing = client.close()
    assert.equal(client.close(), closing, 'idempotent')
    await closing
    const [result] = await settled
    assert.equal(result.status, 'rejected')
    code('FST_SIPWS_LWSC_CLOSED', peerB.url)((result as PromiseRejectedResult).reason)

    await peerA.allClosed()
    await peerB.allClosed()
    assert.ok(peerA.sockets.every((ws) => ws.readyState === WebSocket.CLOSED))
    assert.equal(peerA.open + peerB.open, 0, 'the servers see every socket closed')
    const stats = client.stats()
    assert.equal(stats.connections + stats.connecting + stats.queued + stats.endpoints, 0)
    const timersAfter = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
    assert.ok(timersAfter <= timersBefore, `timers: ${timersBefore} before, ${timersAfter} after`)

    await assert.rejects(client.request(peerA.url, 'late'), code('FST_SIPWS_LWSC_CLOSED', peerA.url))
    await assert.rejects(client.notify(peerA.url, 'late'), code('FST_SIPWS_LWSC_CLOSED', peerA.url))
  })

  test('keepalive pings open connections and drops a peer that never answers', async (t) => {
    const INTERVAL = 300
    const answering = await startPeer()
    const mute = await startPeer({ autoPong: false })
    const client = new LwscClient({ ...FAST, keepaliveInterval: INTERVAL })
    t.after(async () => { await client.close(); await answering.close(); await mute.close() })

    // Count from the moment each connection exists: nothing is missed however late the test runs.
    const pings = { answering: 0, mute: 0 }
    answering.wss.on('connection', (ws) => { ws.on('ping', () => { pings.answering++ }) })
    mute.wss.on('connection', (ws) => { ws.on('ping', () => { pings.mute++ }) })
    const started = performance.now()
    assert.equal(await client.request(answering.url, 'a'), 'a')
    assert.equal(await client.request(mute.url, 'b'), 'b')
    // The ping stays unanswered and the next round closes the connection.
    await within(once(mute.sockets[0], 'close'), 2 * INTERVAL + 2000, () => 'the mute peer was never dropped')
    assert.ok(performance.now() - started >= INTERVAL, 'not before a round had passed')
    assert.ok(pings.mute >= 1, 'dropped after a ping went unanswered')
    assert.ok(pings.answering >= 1, 'the answering peer was pinged too')
    assert.equal(answering.open, 1, 'an answering peer stays connected')
    assert.equal(await client.request(mute.url, 'c'), 'c', 'the next request reconnects')
    assert.equal(mute.handshakes.length, 2)
  })

  test('bad arguments reject with typed errors', async (t) => {
    const client = new LwscClient(FAST)
    t.after(async () => { await client.close() })
    for (const url of ['http://127.0.0.1/', 'not a url', 'ws://127.0.0.1/#frag', 'ws://', 'wss://[::1']) {
      await assert.rejects(client.request(url, 'x'), code('FST_SIPWS_LWSC_BAD_URL', url))
      await assert.rejects(client.notify(url, 'x'), code('FST_SIPWS_LWSC_BAD_URL', url))
    }
    // The caller's arguments: 400, so a route passing a request's values on answers 400 too.
    await assert.rejects(client.request('not a url', 'x'), { code: 'FST_SIPWS_LWSC_BAD_URL', statusCode: 400 })
    await assert.rejects(client.requestProto('ws://127.0.0.1:1/', 'two words', 'x'), { code: 'FST_SIPWS_INVALID_ARGUMENT', statusCode: 400 })
    // @ts-expect-error a number is not a payload
    await assert.rejects(client.request('ws://127.0.0.1:1/', 42), { code: 'FST_SIPWS_INVALID_ARGUMENT', statusCode: 400 })
    assert.equal(client.stats().endpoints, 0)
  })

  test('options are validated by name', () => {
    assert.throws(() => new LwscClient({ poolSize: 0 }), (err: Error) => /lwsc\.poolSize/.test(err.message))
    assert.throws(() => new LwscClient({ timeoutRead: -1 }), (err: Error) => /lwsc\.timeoutRead/.test(err.message))
    assert.throws(() => new LwscClient({ reconnectBackoffMin: 500, reconnectBackoffMax: 100 }), /reconnectBackoffMax/)
    // @ts-expect-error unknown option
    assert.throws(() => new LwscClient({ timeout_init: 2000000 }), { code: 'FST_SIPWS_INVALID_OPTION' })
    const client = new LwscClient()
    assert.equal(client.options.protocol, 'kmsg')
    assert.equal(client.options.timeoutInit, 2000)
    assert.equal(client.options.timeoutRead, 2000)
    assert.equal(client.options.poolSize, 4)
  })

  test('verbosity gates connection-event logs', async (t) => {
    const peer = await startPeer()
    const quiet = recordingLogger()
    const chatty = recordingLogger()
    const c0 = new LwscClient({ ...FAST, verbosity: 0 }, quiet)
    const c3 = new LwscClient({ ...FAST, verbosity: 3 }, chatty)
    t.after(async () => { await c0.close(); await c3.close(); await peer.close() })

    await c0.request(peer.url, 'x')
    await c3.request(peer.url, 'x')
    assert.deepEqual(quiet.lines, [])
    const messages = chatty.lines.map((l) => `${l.level} ${l.msg ?? ''}`)
    assert.ok(messages.includes('debug lwsc: connecting'))
    assert.ok(messages.includes('info lwsc: connected'))
    assert.ok(messages.includes('debug lwsc: sent'))
    assert.ok(messages.includes('debug lwsc: received'))
  })
})

test('types', () => {
  const client = new LwscClient()
  expectTypeOf(client.request).returns.toEqualTypeOf<Promise<string | Buffer>>()
  expectTypeOf(client.requestProto).parameters.toEqualTypeOf<[string, string, string | Buffer | Uint8Array]>()
  expectTypeOf(client.notify).returns.toEqualTypeOf<Promise<void>>()
  expectTypeOf(client.notifyProto).returns.toEqualTypeOf<Promise<void>>()
  expectTypeOf(client.stats()).toEqualTypeOf<LwscStats>()
  expectTypeOf(client.close).returns.toEqualTypeOf<Promise<void>>()
})

describe('LwscClient\'s own bookkeeping', () => {
  test('its options are resolved and frozen; it offers no compression and follows no redirect', async (t) => {
    const peer = await startPeer()
    const redirect = await startHttpRefuser(302, { Location: peer.url })
    const client = new LwscClient(FAST)
    t.after(async () => { await client.close(); await peer.close(); await redirect.close() })
    assert.equal(Object.isFrozen(client.options), true)
    assert.equal(Reflect.set(client.options, 'poolSize', 99), false)
    assert.equal(client.options.poolSize, 4)
    assert.equal(await client.request(peer.url, 'x'), 'x')
    assert.equal(peer.handshakes[0].headers['sec-websocket-extensions'], undefined, 'no permessage-deflate offered')
    await assert.rejects(client.request(redirect.url, 'x'), code('FST_SIPWS_LWSC_CONNECTION_FAILED', redirect.url))
    assert.equal(peer.handshakes.length, 1, 'the redirect was not followed')
  })

  test('one endpoint per (url, sub-protocol); stats add up every endpoint\'s gauges', async (t) => {
    const mute = await startPeer({ onMessage: () => {} })
    const silent = await startSilentTcp()
    const client = new LwscClient({ ...FAST, timeoutRead: 10_000, timeoutInit: 10_000 })
    t.after(async () => { await client.close(); await mute.close(); await silent.close() })
    const pending = [
      client.request(mute.url, 'a'),
      client.requestProto(mute.url, 'sip', 'b'),
      client.request(`${mute.url}?other`, 'c'),
      client.request(silent.url, 'd')
    ].map(async (p) => await p.catch((err: LwscError) => err.code))
    await until(() => client.stats().inFlight === 3, 5000, () => `inFlight ${client.stats().inFlight}`, 0)
    const { connections, connecting, inFlight, queued, endpoints, requests } = client.stats()
    assert.deepEqual({ connections, connecting, inFlight, queued, endpoints, requests }, { connections: 3, connecting: 1, inFlight: 3, queued: 1, endpoints: 4, requests: 4 })
    assert.deepEqual(mute.handshakes.map((h) => h.protocol).sort(), ['kmsg', 'kmsg', 'sip'])
    await client.close()
    assert.deepEqual(await Promise.all(pending), Array(4).fill('FST_SIPWS_LWSC_CLOSED'))
  })

  test('the keepalive round forgets an endpoint whose target failed once its backoff has run out', async (t) => {
    const url = `ws://127.0.0.1:${await freePort()}/`
    const client = new LwscClient({ ...FAST, keepaliveInterval: 100, reconnectBackoffMin: 50, reconnectBackoffMax: 50 })
    t.after(async () => { await client.close() })
    await assert.rejects(client.request(url, 'x'), code('FST_SIPWS_LWSC_CONNECTION_FAILED', url))
    assert.equal(client.stats().endpoints, 1, 'kept while its backoff runs')
    await until(() => client.stats().endpoints === 0, 5000, () => 'the endpoint to be forgotten')
  })

  test('after close() every call is refused as closed, before its arguments are looked at; a bad payload names its target', async (t) => {
    const client = new LwscClient(FAST)
    t.after(async () => { await client.close() })
    // @ts-expect-error a number is not a payload
    await assert.rejects(client.request('ws://127.0.0.1:1/x', 42), (err: LwscError) => err.code === 'FST_SIPWS_INVALID_ARGUMENT' && err.url === 'ws://127.0.0.1:1/x')
    await client.close()
    // @ts-expect-error a number is not a payload
    await assert.rejects(client.request('not a url', 42), code('FST_SIPWS_LWSC_CLOSED', 'not a url'))
    await assert.rejects(client.notifyProto('ws://127.0.0.1:1/', 'two words', 'x'), code('FST_SIPWS_LWSC_CLOSED', 'ws://127.0.0.1:1/'))
    const { requests, notifies, endpoints } = client.stats()
    assert.deepEqual({ requests, notifies, endpoints }, { requests: 0, notifies: 0, endpoints: 0 }, 'nothing counted or cached')
  })
})
