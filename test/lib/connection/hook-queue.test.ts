import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import type { WsMessage } from '../../../lib'
import type { Connection } from '../../../lib/connection/connection'
import { HookDispatcher } from '../../../lib/connection/hook-queue'
import { Hooks } from '../../../lib/hooks'
import { entry as synthetic } from '../../helpers/connections'
import { within } from '../../helpers/pool'
import { Rng } from '../../helpers/random'
import { connect, loggedApp, startApp } from '../../helpers/server'

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed11)
const LATE = 2000

/** A promise and the functions that settle it. */
function deferred<T = void> (): { promise: Promise<T>, resolve: (value: T) => void } {
  let resolve: (value: T) => void = () => {}
  const promise = new Promise<T>((r) => { resolve = r })
  return { promise, resolve }
}

/** Resolves once `count` messages have come back on `ws`. */
async function replies (ws: WebSocket, count: number, ms: number): Promise<string[]> {
  const got: string[] = []
  return await within(new Promise<string[]>((resolve) => {
    ws.on('message', (data: Buffer) => { got.push(data.toString()); if (got.length === count) resolve(got) })
  }), ms, () => `${got.length} of ${count} replies`)
}

describe('per-connection hook order', () => {
  test(`200 messages with random async delays run one at a time per connection, in arrival order (seed ${SEED})`, async () => {
    const rng = new Rng(SEED)
    const running = new Map<number, number>()
    let maxRunning = 0
    const order = new Map<number, number[]>()
    const s = await startApp({}, (app) => {
      app.addWsHook('websocket:message', async (m) => {
        const now = (running.get(m.id) ?? 0) + 1
        running.set(m.id, now)
        maxRunning = Math.max(maxRunning, now)
        // Microtask, macrotask and timer delays, so later messages would overtake earlier ones if allowed.
        const kind = rng.int(0, 2)
        if (kind === 0) await Promise.resolve()
        else if (kind === 1) await new Promise((resolve) => setImmediate(resolve))
        else await new Promise((resolve) => setTimeout(resolve, rng.int(0, 7)))
        order.set(m.id, [...(order.get(m.id) ?? []), Number(m.data)])
        running.set(m.id, now - 1)
        app.wsSend(m.id, String(m.data))
      })
    })
    try {
      const clients = await Promise.all([connect(s.url), connect(s.url)])
      const done = clients.map(async (ws) => await replies(ws, 200, 20_000))
      for (let i = 0; i < 200; i++) for (const ws of clients) ws.send(String(i))
      const expected = Array.from({ length: 200 }, (_, i) => String(i))
      for (const got of await Promise.all(done)) assert.deepEqual(got, expected)
      for (const seen of order.values()) assert.deepEqual(seen, expected.map(Number))
      assert.equal(maxRunning, 1, 'exactly one hook running per connection')
      for (const ws of clients) ws.terminate()
    } finally { await s.app.close() }
  })

  test('a stalled connection holds up only itself', async () => {
    const gate = deferred()
    const s = await startApp({}, (app) => {
      app.addWsHook('websocket:message', async (m) => {
        if (m.data === 'stall') await gate.promise
        app.wsSend(m.id, `done:${String(m.data)}`)
      })
    })
    try {
      const stalled = await connect(s.url)
      const other = await connect(s.url)
      const stalledReplies = replies(stalled, 2, 10_000)
      stalled.send('stall')
      stalled.send('after')
      // The other connection's messages go through while the first waits.
      const otherReplies = replies(other, 3, 5000)
      for (const text of ['a', 'b', 'c']) other.send(text)
      assert.deepEqual(await otherReplies, ['done:a', 'done:b', 'done:c'])
      gate.resolve()
      assert.deepEqual(await stalledReplies, ['done:stall', 'done:after'])
      stalled.terminate(); other.terminate()
    } finally { await s.app.close() }
  })

  test('websocket:open settles before the first message hook; websocket:closed runs after the last one', async () => {
    const events: string[] = []
    const closed = deferred()
    const s = await startApp({}, (app) => {
      app.addWsHook('websocket:open', async (e) => {
        await new Promise((resolve) => setTimeout(resolve, 100))
        events.push(`open:${e.id}`)
      })
      app.addWsHook('websocket:message', async (m) => {
        await new Promise((resolve) => setTimeout(resolve, 20))
        events.push(`message:${String(m.data)}`)
      })
      app.addWsHook('websocket:closed', (e) => { events.push(`closed:${e.id}`); closed.resolve() })
    })
    try {
      // The client sends at once and closes before any hook could have finished.
      const ws = new WebSocket(s.url, 'sip')
      await once(ws, 'open')
      ws.send('1'); ws.send('2'); ws.send('3')
      ws.close()
      await within(closed.promise, 5000, () => 'closed hook')
      const id = Number(events[0].split(':')[1])
      assert.deepEqual(events, [`open:${id}`, 'message:1', 'message:2', 'message:3', `closed:${id}`])
    } finally { await s.app.close() }
  })

  test('hooks run in order across an async one; a rejecting or throwing hook is logged and the next still runs', async () => {
    const { fastifyOptions, entries } = loggedApp('error')
    const seen: string[] = []
    const s = await startApp({}, (app) => {
      app.addWsHook('websocket:message', (m) => { seen.push(`a${String(m.data)}`); if (m.data === 'x') throw new Error('sync failure') })
      app.addWsHook('websocket:message', async (m) => {
        await new Promise((resolve) => setImmediate(resolve))
        seen.push(`b${String(m.data)}`)
        if (m.data === 'y') throw new Error('async failure')
      })
      app.addWsHook('websocket:message', (m) => { seen.push(`c${String(m.data)}`); app.wsSend(m.id, String(m.data)) })
    }, fastifyOptions)
    try {
      const ws = await connect(s.url)
      const got = replies(ws, 3, 5000)
      for (const text of ['x', 'y', 'z']) ws.send(text)
      assert.deepEqual(await got, ['x', 'y', 'z'])
      assert.deepEqual(seen, ['ax', 'bx', 'cx', 'ay', 'by', 'cy', 'az', 'bz', 'cz'])
      assert.ok(entries.some((e) => e.msg?.includes('websocket:message hook failed') === true && (e.err as { message?: string })?.message === 'sync failure'))
      assert.ok(entries.some((e) => (e.err as { message?: string })?.message === 'async failure'))
      ws.terminate()
    } finally { await s.app.close() }
  })
})

describe('hookTimeout', () => {
  test('a message hook past hookTimeout is logged with the connection id, and the queue moves on', async () => {
    const { fastifyOptions, entries } = loggedApp('warn')
    const HOOK_TIMEOUT = 300
    const s = await startApp({ hookTimeout: HOOK_TIMEOUT }, (app) => {
      app.addWsHook('websocket:message', async (m) => {
        if (m.data === 'hang') await new Promise(() => {})
        app.wsSend(m.id, `done:${String(m.data)}`)
      })
    }, fastifyOptions)
    try {
      const ws = await connect(s.url)
      const id = s.app.wsDump().connections[0].id
      const got = replies(ws, 1, HOOK_TIMEOUT + LATE)
      const started = performance.now()
      ws.send('hang')
      ws.send('next')
      assert.deepEqual(await got, ['done:next'])
      assert.ok(performance.now() - started >= HOOK_TIMEOUT - 25, 'not before hookTimeout')
      const warning = entries.find((e) => e.msg?.includes('hook still running after hookTimeout') === true)
      assert.ok(warning !== undefined, 'logged')
      assert.deepEqual([warning.id, warning.hook, warning.hookTimeout], [id, 'websocket:message', HOOK_TIMEOUT])
      ws.terminate()
    } finally { await s.app.close() }
  })
})

describe('backpressure', () => {
  test('a connection whose hook falls behind is paused, holds a bounded backlog, and loses nothing', async (t) => {
    const LIMIT = 64 * 1024
    const SIZE = 4096
    const COUNT = 2000
    const gate = deferred()
    const seen: number[] = []
    let server: FastifyInstance | undefined
    const { fastifyOptions, next } = loggedApp('debug')
    const s = await startApp({ hookQueueLimit: LIMIT, maxPayload: 65536 }, (app) => {
      server = app
      app.addWsHook('websocket:message', async (m: WsMessage) => {
        if (seen.length === 0) await gate.promise
        seen.push((m.data as Buffer).readUInt32BE(0))
        if (seen.length === COUNT) app.wsSend(m.id, 'all')
      })
    }, fastifyOptions)
    try {
      const ws = await connect(s.url)
      const payload = Buffer.alloc(SIZE)
      for (let i = 0; i < COUNT; i++) {
        const copy = Buffer.from(payload)
        copy.writeUInt32BE(i, 0)
        ws.send(copy)
      }
      const paused = await within(next('pausing reads'), 10_000, () => 'the socket was never paused')
      // What the socket read already is parsed to the end of its chunk, after the pause.
      await new Promise((resolve) => setImmediate(resolve))
      const held = server!.wsStats().ws_received_frames - 1
      assert.ok((paused.bytes as number) > LIMIT, 'paused once over the limit')
      // The backlog stops at the limit, plus what one socket read (64 KiB) had already brought in.
      const bound = LIMIT + 64 * 1024 + SIZE
      t.diagnostic(`paused with ${held} messages (${held * SIZE} bytes) waiting behind the stalled hook; ${ws.bufferedAmount} bytes still unsent at the client; bound ${bound} bytes`)
      assert.ok(held * SIZE <= bound, `${held} messages of ${SIZE} bytes waiting, over the bound of ${bound} bytes`)
      assert.ok(held < COUNT - 1, 'the socket was paused before everything arrived')
      assert.ok(ws.bufferedAmount > 0, 'the client could not send the rest')
      const all = once(ws, 'message')
      gate.resolve()
      await within(all, 20_000, () => `${seen.length} of ${COUNT} messages after resuming`)
      assert.deepEqual(seen, Array.from({ length: COUNT }, (_, i) => i))
      ws.terminate()
    } finally { await s.app.close() }
  })
})

describe('HookDispatcher (no sockets)', () => {
  const log = { error () {}, warn () {} } as never
  const entry = (id: number): Connection => synthetic(id)

  test('synchronous hooks take the direct path: no queue is ever made for the connection', () => {
    const hooks = new Hooks(log)
    let calls = 0
    hooks.add({} as FastifyInstance, 'websocket:message', () => { calls++ })
    hooks.add({} as FastifyInstance, 'websocket:message', () => { calls++ })
    const dispatcher = new HookDispatcher(hooks, { hookTimeout: 1000, queueLimit: 0 }, { pause: () => { assert.fail('paused') }, resume: () => {} }, log)
    const conn = entry(1)
    for (let i = 0; i < 10_000; i++) dispatcher.dispatch(conn, 'websocket:message', { id: 1, data: 'x', binary: false, subProtocol: 'sip', remoteAddress: '', remotePort: 0, log }, 129)
    assert.equal(calls, 20_000)
    assert.equal(conn.queue, null)
    assert.equal(dispatcher.busy, 0)
  })

  test('an async hook queues later events, pauses past the limit and resumes below half of it', async () => {
    const hooks = new Hooks(log)
    const gates: Array<() => void> = []
    hooks.add({} as FastifyInstance, 'websocket:message', async () => { await new Promise<void>((resolve) => { gates.push(resolve) }) })
    const flow: string[] = []
    const dispatcher = new HookDispatcher(hooks, { hookTimeout: 10_000, queueLimit: 1000 }, { pause: () => { flow.push('pause') }, resume: () => { flow.push('resume') } }, log)
    const conn = entry(2)
    const message = { id: 2, data: 'x', binary: false as const, subProtocol: 'sip', remoteAddress: '', remotePort: 0, log }
    for (let i = 0; i < 5; i++) dispatcher.dispatch(conn, 'websocket:message', message, 300)
    assert.equal(conn.queue?.waiting, 4)
    assert.deepEqual(flow, ['pause'], 'over 1000 bytes waiting after the fourth')
    const idle = dispatcher.whenIdle(5000)
    for (let i = 0; i < 5; i++) {
      while (gates.length === 0) await new Promise((resolve) => setImmediate(resolve))
      gates.shift()?.()
    }
    assert.equal(await idle, true)
    assert.deepEqual(flow, ['pause', 'resume'])
    assert.equal(conn.queue?.busy, false)
  })

  test('each awaited hook gets its own full hookTimeout, however long the connection has been busy', async () => {
    const warning = deferred<{ hook: string, at: number }>()
    let warnings = 0
    const warnLog = { error () {}, warn (fields: { hook: string }) { warnings++; warning.resolve({ hook: fields.hook, at: performance.now() }) } } as never
    const hooks = new Hooks(warnLog)
    const firstGate = deferred()
    // The first message's hook settles when told; the second's never does.
    hooks.add({} as FastifyInstance, 'websocket:message', async (msg: WsMessage) => {
      if (msg.data === 'first') await firstGate.promise
      else await new Promise<void>(() => {})
    })
    const HOOK_TIMEOUT = 300
    const dispatcher = new HookDispatcher(hooks, { hookTimeout: HOOK_TIMEOUT, queueLimit: 1 << 20 }, { pause: () => {}, resume: () => {} }, warnLog)
    const conn = entry(3)
    const message = (data: string): WsMessage => ({ id: 3, data, binary: false, subProtocol: 'sip', remoteAddress: '', remotePort: 0, log: warnLog })
    dispatcher.dispatch(conn, 'websocket:message', message('first'), 200)
    dispatcher.dispatch(conn, 'websocket:message', message('second'), 200)
    // The first hook runs for two thirds of hookTimeout (the wait is the point: the timer armed for it is
    // then two thirds gone); the second starts then and must get a whole hookTimeout of its own.
    await new Promise((resolve) => setTimeout(resolve, HOOK_TIMEOUT * 2 / 3))
    const secondStarted = performance.now()
    firstGate.resolve()
    const warned = await within(warning.promise, HOOK_TIMEOUT * 3 + LATE, () => 'no hookTimeout warning')
    assert.equal(warnings, 1)
    assert.equal(warned.hook, 'websocket:message')
    // A lower bound only (a timeout that fired early), which a loaded machine cannot break.
    assert.ok(warned.at - secondStarted >= HOOK_TIMEOUT - 25, `timed out ${Math.round(warned.at - secondStarted)} ms after the second hook began`)
    assert.equal(await dispatcher.whenIdle(LATE), true, 'the queue moved on')
  })
})
