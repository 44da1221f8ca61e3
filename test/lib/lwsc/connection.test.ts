import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import type WebSocket from 'ws'
import { Connection, type ConnectionOwner } from '../../../lib/lwsc/connection'
import type { LwscError } from '../../../lib/lwsc/error-url'
import { Job } from '../../../lib/lwsc/job'
import { silentLogger, type LwscLogger } from '../../../lib/lwsc/logger'
import { within } from '../../helpers/pool'
import { freePort, lwscContext, startHttpRefuser, startPeer, startSilentTcp } from '../../helpers/lwsc'

// How late a timer may fire on a loaded 2-core machine.
const LATE = 2000

/**
 * The endpoint's side of the contract, recorded: what the connection told its owner, in order. A job that
 * fails is rejected, as the endpoint rejects a request.
 */
class Owner implements ConnectionOwner {
  readonly events: string[] = []
  readonly failures: Error[] = []
  detachedWith: { err: LwscError, wasOpen: boolean } | null = null
  readonly open: Promise<Connection>
  readonly gone: Promise<{ err: LwscError, wasOpen: boolean }>
  private onOpen: (conn: Connection) => void = () => {}
  private onGone: (d: { err: LwscError, wasOpen: boolean }) => void = () => {}
  private servedWaiters: Array<() => void> = []

  constructor (readonly url: string, readonly proto = 'kmsg') {
    this.open = new Promise((resolve) => { this.onOpen = resolve })
    this.gone = new Promise((resolve) => { this.onGone = resolve })
  }

  opened = (conn: Connection): void => { this.events.push('opened'); this.onOpen(conn) }
  serve = (): void => {
    this.events.push('serve')
    for (const wake of this.servedWaiters.splice(0)) wake()
  }

  fail = (job: Job, err: Error): void => { this.events.push('fail'); this.failures.push(err); job.reject(err) }
  detached = (_conn: Connection, err: Error, wasOpen: boolean): void => {
    this.events.push('detached')
    this.detachedWith = { err: err as LwscError, wasOpen }
    this.onGone(this.detachedWith)
  }

  async served (): Promise<void> {
    await new Promise<void>((resolve) => { this.servedWaiters.push(resolve) })
  }
}

function job (data: string | Buffer, expectsReply: boolean): { job: Job, result: Promise<string | Buffer | undefined> } {
  let made: Job | null = null
  const result = new Promise<string | Buffer | undefined>((resolve, reject) => { made = new Job(data, expectsReply, resolve, reject) })
  return { job: made as unknown as Job, result }
}

async function closeCode (ws: WebSocket): Promise<number> {
  const [code] = await once(ws, 'close') as [number]
  return code
}

describe('lwsc Connection: opening', () => {
  test('opens: tells its owner once, offers its sub-protocol, and is usable and quiet', async (t) => {
    const peer = await startPeer()
    const owner = new Owner(peer.url, 'sip')
    const ctx = lwscContext()
    const conn = new Connection(owner, ctx)
    t.after(async () => { await conn.close(); await peer.close() })
    assert.equal(conn.usable, false, 'not before the handshake')
    assert.equal(await owner.open, conn)
    assert.deepEqual([conn.usable, conn.quiet, conn.busy], [true, true, false])
    assert.deepEqual(owner.events, ['opened'])
    assert.equal(ctx.counters.opened, 1)
    assert.equal(peer.handshakes[0].protocol, 'sip')
  })

  test('a handshake that never completes: a connect timeout, counted once; never opened', async (t) => {
    const silent = await startSilentTcp()
    const owner = new Owner(silent.url)
    const ctx = lwscContext({ timeoutInit: 150 })
    const started = performance.now()
    const conn = new Connection(owner, ctx)
    t.after(async () => { await conn.close(); await silent.close() })
    const { err, wasOpen } = await within(owner.gone, 150 + LATE, () => 'no connect timeout')
    assert.ok(performance.now() - started >= 140)
    assert.deepEqual([err.code, err.url, wasOpen], ['FST_SIPWS_LWSC_CONNECT_TIMEOUT', silent.url, false])
    assert.equal(ctx.counters.timeouts, 1)
    assert.deepEqual(owner.events, ['detached'])
  })

  test('a refused port: a connection error naming the socket error, never opened', async () => {
    const url = `ws://127.0.0.1:${await freePort()}/`
    const owner = new Owner(url)
    const conn = new Connection(owner, lwscContext())
    const { err, wasOpen } = await within(owner.gone, LATE, () => 'no failure')
    assert.equal(err.code, 'FST_SIPWS_LWSC_CONNECTION_FAILED')
    assert.match(err.message, /ECONNREFUSED/)
    assert.equal(wasOpen, false)
    await conn.close()
    assert.deepEqual(owner.events, ['detached'], 'told once, however it ends')
  })

  test('a refusal that lists our sub-protocol among those supported is no sub-protocol refusal', async (t) => {
    const refuser = await startHttpRefuser(400, { 'Sec-WebSocket-Protocol': 'sip, kmsg' })
    t.after(async () => { await refuser.close() })
    const owner = new Owner(refuser.url, 'kmsg')
    const conn = new Connection(owner, lwscContext())
    const { err } = await within(owner.gone, LATE, () => 'no failure')
    assert.equal(err.code, 'FST_SIPWS_LWSC_CONNECTION_FAILED')
    assert.match(err.message, /answered 400 Bad Request$/)
    await conn.close()
  })

  test('close() while connecting: the socket is dropped at once and the owner told it never opened', async (t) => {
    const silent = await startSilentTcp()
    t.after(async () => { await silent.close() })
    const owner = new Owner(silent.url)
    const ctx = lwscContext({ timeoutInit: 5000 })
    const conn = new Connection(owner, ctx)
    await within(conn.close(), LATE, () => 'close() waited for the handshake')
    const { err, wasOpen } = await owner.gone
    assert.deepEqual([err.code, wasOpen], ['FST_SIPWS_LWSC_CLOSED', false])
    assert.equal(ctx.counters.timeouts, 0, 'its connect timer went with it')
  })
})

describe('lwsc Connection: requests and notifications', () => {
  test('a request makes it busy until its reply; a text reply is a string, a binary one a Buffer; then the owner is asked to serve', async (t) => {
    const peer = await startPeer()
    const owner = new Owner(peer.url)
    const ctx = lwscContext()
    const conn = new Connection(owner, ctx)
    t.after(async () => { await conn.close(); await peer.close() })
    await owner.open
    const text = job('hello', true)
    conn.dispatch(text.job)
    assert.deepEqual([conn.busy, conn.usable, conn.quiet], [true, false, false])
    const served = owner.served()
    assert.equal(await text.result, 'hello')
    await served
    assert.deepEqual([conn.busy, conn.usable], [false, true])
    const bin = job(Buffer.from([0, 255]), true)
    conn.dispatch(bin.job)
    const reply = await bin.result
    assert.ok(Buffer.isBuffer(reply))
    assert.deepEqual(reply, Buffer.from([0, 255]))
    assert.equal(ctx.counters.replies, 2)
    assert.deepEqual(owner.events, ['opened', 'serve', 'serve'])
  })

  test('a notification resolves once written; a message no request waits for is dropped, and logged at verbosity 2', async (t) => {
    const peer = await startPeer({ onMessage: (ws, data) => { if (data.toString() === 'note') ws.send('unasked') } })
    let dropped: () => void = () => {}
    const droppedLogged = new Promise<void>((resolve) => { dropped = resolve })
    const log: LwscLogger = { ...silentLogger, debug: (_obj, msg) => { if (msg === 'lwsc: dropped a message no request was waiting for') dropped() } }
    const owner = new Owner(peer.url)
    const ctx = lwscContext({ verbosity: 2 }, log)
    const conn = new Connection(owner, ctx)
    t.after(async () => { await conn.close(); await peer.close() })
    await owner.open
    const note = job('note', false)
    conn.dispatch(note.job)
    assert.equal(conn.busy, false, 'a notification waits for no reply')
    assert.equal(await note.result, undefined)
    await within(droppedLogged, LATE, () => 'the unasked message was not dropped')
    assert.equal(ctx.counters.dropped, 1)
    assert.equal(ctx.counters.replies, 0)
    assert.equal(conn.usable, true)
  })

  test('no reply within timeoutRead: the request fails with a read timeout and the connection is discarded', async (t) => {
    const peer = await startPeer({ onMessage: () => {} })
    const owner = new Owner(peer.url)
    const ctx = lwscContext({ timeoutRead: 150 })
    const conn = new Connection(owner, ctx)
    t.after(async () => { await conn.close(); await peer.close() })
    await owner.open
    const started = performance.now()
    const request = job('anyone?', true)
    conn.dispatch(request.job)
    await assert.rejects(within(request.result, 150 + LATE, () => 'no read timeout'), { code: 'FST_SIPWS_LWSC_READ_TIMEOUT', url: peer.url })
    assert.ok(performance.now() - started >= 140)
    assert.equal(ctx.counters.timeouts, 1)
    const { err, wasOpen } = await owner.gone
    assert.deepEqual([err.code, err.message, wasOpen], ['FST_SIPWS_LWSC_CONNECTION_FAILED', `lwsc: connection to ${peer.url} failed: discarded after a read timeout`, true])
    assert.deepEqual(owner.events, ['opened', 'fail', 'detached'])
    assert.equal(conn.usable, false, 'never handed another job')
    await peer.allClosed()
  })

  test('the server going away: the request in flight fails, and the owner is told once', async (t) => {
    const peer = await startPeer({ onMessage: (ws) => { ws.close(1001, 'bye') } })
    const owner = new Owner(peer.url)
    const conn = new Connection(owner, lwscContext())
    t.after(async () => { await peer.close() })
    await owner.open
    const request = job('x', true)
    conn.dispatch(request.job)
    await assert.rejects(request.result, { code: 'FST_SIPWS_LWSC_CONNECTION_FAILED', message: /closed by the server \(code 1001\)$/ })
    const { wasOpen } = await owner.gone
    assert.equal(wasOpen, true)
    await conn.close()
    await conn.close()
    assert.deepEqual(owner.events, ['opened', 'fail', 'detached'])
  })
})

describe('lwsc Connection: taking it out of service', () => {
  test('close(): Close 1000, the request in flight fails with LwscClosedError, one promise for every call', async (t) => {
    const peer = await startPeer({ onMessage: () => {} })
    const owner = new Owner(peer.url)
    const ctx = lwscContext()
    const conn = new Connection(owner, ctx)
    t.after(async () => { await peer.close() })
    await owner.open
    const request = job('never answered', true)
    conn.dispatch(request.job)
    const code = closeCode(peer.sockets[0])
    const closing = conn.close()
    assert.equal(conn.close(), closing)
    await assert.rejects(request.result, { code: 'FST_SIPWS_LWSC_CLOSED', url: peer.url })
    await closing
    assert.equal(await code, 1000)
    assert.deepEqual([owner.detachedWith?.err.code, owner.detachedWith?.wasOpen], ['FST_SIPWS_LWSC_CLOSED', true])
    await conn.close()
    assert.equal(ctx.discarded.size, 0)
  })

  test('retire() takes only a quiet connection: a busy one keeps its request; an idle one closes with 1000 and says why', async (t) => {
    let answer: () => void = () => {}
    const peer = await startPeer({ onMessage: (ws, data) => { answer = () => { ws.send(data.toString()) } } })
    const owner = new Owner(peer.url)
    const ctx = lwscContext()
    const conn = new Connection(owner, ctx)
    t.after(async () => { await conn.close(); await peer.close() })
    await owner.open
    const request = job('slow', true)
    const arrived = once(peer.sockets[0], 'message')
    conn.dispatch(request.job)
    await arrived
    conn.retire('endpoint evicted')
    assert.equal(conn.busy, true, 'a busy connection is not retired')
    answer()
    assert.equal(await request.result, 'slow')
    const code = closeCode(peer.sockets[0])
    conn.retire('endpoint evicted from the cache (maxEndpoints)')
    assert.ok(ctx.discarded.has(conn), 'its socket still closing')
    assert.equal(await code, 1000)
    const { err, wasOpen } = await owner.gone
    assert.deepEqual([err.message, wasOpen], [`lwsc: connection to ${peer.url} failed: endpoint evicted from the cache (maxEndpoints)`, true])
  })

  test('idleTimeout: an idle connection retires itself with 1000, naming the timeout', async (t) => {
    const peer = await startPeer()
    const owner = new Owner(peer.url)
    const conn = new Connection(owner, lwscContext({ idleTimeout: 150 }))
    t.after(async () => { await conn.close(); await peer.close() })
    await owner.open
    const code = closeCode(peer.sockets[0])
    const { err } = await within(owner.gone, 150 + LATE, () => 'never retired')
    assert.equal(err.message, `lwsc: connection to ${peer.url} failed: idle for 150 ms (idleTimeout)`)
    assert.equal(await code, 1000)
  })

  test('keepalive: a peer that answers the Ping stays; one that answers nothing is dropped on the next round', async (t) => {
    const answering = await startPeer()
    const mute = await startPeer({ autoPong: false })
    const alive = new Owner(answering.url)
    const dead = new Owner(mute.url)
    const a = new Connection(alive, lwscContext({ keepaliveInterval: 1000 }))
    const b = new Connection(dead, lwscContext({ keepaliveInterval: 1000 }))
    t.after(async () => { await a.close(); await b.close(); await answering.close(); await mute.close() })
    await Promise.all([alive.open, dead.open])
    const [aSide, bSide] = [answering.sockets[0], mute.sockets[0]]
    const pinged = [once(aSide, 'ping'), once(bSide, 'ping')]
    a.keepalive()
    b.keepalive()
    await Promise.all(pinged)
    // The peer's own Ping goes out behind its Pong: once the client's answer to it is back, the Pong was read.
    const answered = once(aSide, 'pong')
    aSide.ping()
    await answered
    const again = once(aSide, 'ping')
    a.keepalive()
    b.keepalive()
    assert.equal(alive.detachedWith, null, 'an answering peer is kept')
    await again
    assert.equal(dead.detachedWith?.err.message, `lwsc: connection to ${mute.url} failed: no answer to a keepalive ping within 1000 ms`)
    assert.equal(await closeCode(bSide), 1006, 'dropped without a close handshake')
  })

  test('keepalive leaves a connection still opening alone', async (t) => {
    const silent = await startSilentTcp()
    const owner = new Owner(silent.url)
    const conn = new Connection(owner, lwscContext({ keepaliveInterval: 1000, timeoutInit: 5000 }))
    t.after(async () => { await conn.close(); await silent.close() })
    conn.keepalive()
    conn.keepalive()
    assert.equal(owner.detachedWith, null)
  })
})
