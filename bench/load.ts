/**
 * A load generator process. run.ts forks several and drives them over IPC, so the load never shares an
 * event loop (or a file-descriptor limit) with a target. Every command is bounded in time and count and
 * talks only to 127.0.0.1; each reply carries the process's own CPU use over the measured window.
 */
import http from 'node:http'
import type net from 'node:net'
import { LwscClient } from '../lib/lwsc'
import { optionsRequest } from './sip'
import { keep, storm, type StormCommand } from './storm-client'
import { Latencies, nowMs, Window, type LoadResult } from './window'
import { CLOSE_FRAME, FrameSplitter, OP_PING, OP_TEXT, openWs, pongFrame, textFrame, type OpenSocket } from './wire'

export type LoadCommand =
  | { cmd: 'rtt', port: number, conns: number, warmupMs: number, seconds: number, localAddress: string, size?: number }
  | { cmd: 'exact', port: number, conns: number, warmup: number, count: number, localAddress: string, size?: number }
  | { cmd: 'handshakes', port: number, concurrency: number, seconds: number, localAddresses: string[], warmupMs?: number }
  | { cmd: 'hold', port: number, count: number, concurrency: number, localAddress: string }
  | { cmd: 'release' }
  | { cmd: 'lwsc', url: string, mode: 'reused' | 'pool' | 'fresh', seconds: number }
  | { cmd: 'http', url: string, concurrency: number, seconds: number }
  | StormCommand

export type { LoadResult } from './window'

const HANDSHAKE_TIMEOUT_MS = 5000

const OK = Buffer.from('SIP/2.0 200 OK')

/**
 * Reads a connection's answers: answers Pings, checks that the first text frame is a 200 OK (the figures
 * count only real answers: every target must reply 200 OK to the OPTIONS) and calls `onAnswer` for each.
 */
function readAnswers (open: OpenSocket, onAnswer: () => void, onBad: (why: string) => void): void {
  const { socket, rest } = open
  let checked = false
  const splitter = new FrameSplitter((opcode, payload) => {
    if (opcode === OP_PING) { socket.write(pongFrame(payload)); return }
    if (opcode !== OP_TEXT) return
    if (!checked) {
      checked = true
      if (!payload.subarray(0, OK.length).equals(OK)) {
        onBad(`unexpected reply: ${payload.subarray(0, 40).toString()}`)
        socket.destroy()
        return
      }
    }
    onAnswer()
  })
  socket.on('data', (chunk: Buffer) => { splitter.push(chunk) })
  if (rest.length > 0) splitter.push(rest)
}

async function openAll (c: { port: number, conns: number, localAddress: string }, timeoutMs = HANDSHAKE_TIMEOUT_MS): Promise<OpenSocket[]> {
  return await Promise.all(Array.from({ length: c.conns }, async () => await openWs(c.port, c.localAddress, timeoutMs)))
}

/**
 * `conns` connections, one OPTIONS (of `size` bytes) in flight on each; counts the 200s that arrive inside
 * the window.
 */
async function roundTrips (c: Extract<LoadCommand, { cmd: 'rtt' }>): Promise<LoadResult> {
  const sockets = await openAll(c)
  const latencies = new Latencies()
  let done = 0
  let failed = 0
  let firstError: string | undefined
  let measuring = false
  let window: Window | null = null
  const end = nowMs() + c.warmupMs + c.seconds * 1000
  let open = sockets.length
  const result = await new Promise<LoadResult>((resolve) => {
    const finished = (): void => {
      if (--open === 0) resolve(window === null ? new Window().finish(0, failed, firstError) : window.finish(done, failed, firstError, latencies))
    }
    sockets.forEach((ws, i) => {
      const { socket } = ws
      const request = textFrame(optionsRequest(`rtt${i}`, c.size))
      let sentAt = 0
      const send = (): void => { sentAt = nowMs(); socket.write(request) }
      readAnswers(ws, () => {
        const t = nowMs()
        if (measuring) { done++; latencies.add(t - sentAt) }
        if (t < end) send()
        else socket.end(CLOSE_FRAME)
      }, (why) => { failed++; firstError ??= why })
      socket.on('error', (err) => { failed++; firstError ??= err.message })
      socket.on('close', finished)
      send()
    })
    setTimeout(() => { measuring = true; window = new Window() }, c.warmupMs)
    setTimeout(() => { measuring = false; window?.end() }, c.warmupMs + c.seconds * 1000)
    // A target that stops answering must not hang the bench.
    setTimeout(() => { for (const { socket } of sockets) socket.destroy() }, c.warmupMs + c.seconds * 1000 + HANDSHAKE_TIMEOUT_MS).unref()
  })
  return result
}

/**
 * For instruction counts (bench/instructions.ts): `warmup` round trips, then the window's start mark and,
 * once the driver says `go`, exactly `count` more over the same connections, then the end mark and, after
 * another `go`, the close: nothing but messages falls between the two marks.
 */
async function exactRoundTrips (c: Extract<LoadCommand, { cmd: 'exact' }>): Promise<LoadResult> {
  // A target under valgrind on a busy machine may take many seconds over its first handshakes.
  const sockets = await openAll(c, 120_000)
  let failed = 0
  let firstError: string | undefined
  // The driver's word to go on, after each window mark.
  const go = async (): Promise<void> => { await new Promise<void>((resolve) => {
    const onGo = (m: { cmd?: string }): void => { if (m.cmd === 'go') { process.off('message', onGo); resolve() } }
    process.on('message', onGo)
  }) }
  // What each connection does with an answer: set by each batch.
  let lanes: Array<() => void> = []
  const batch = async (total: number): Promise<void> => {
    let issued = 0
    let answered = 0
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`${total - answered} of ${total} round trips unanswered after 600 s`)) }, 600_000)
      const sends = sockets.map((ws, i) => {
        const request = textFrame(optionsRequest(`exact${i}`, c.size))
        return () => { if (issued < total) { issued++; ws.socket.write(request) } }
      })
      lanes = sends.map((send) => () => {
        if (++answered === total) { clearTimeout(timer); resolve() } else send()
      })
      for (const send of sends) send()
    })
  }
  sockets.forEach((ws, i) => {
    readAnswers(ws, () => { lanes[i]() }, (why) => { failed++; firstError ??= why })
    ws.socket.on('error', (err) => { failed++; firstError ??= err.message })
  })
  await batch(c.warmup)
  const window = new Window()
  await go()
  await batch(c.count)
  window.end()
  await go()
  const result = window.finish(c.count, failed, firstError)
  await Promise.all(sockets.map(async ({ socket }) => { await new Promise((resolve) => { socket.once('close', resolve); socket.end(CLOSE_FRAME) }) }))
  return result
}

/** `concurrency` lanes, each opening a WebSocket (sub-protocol sip) and closing it with a Close frame. */
async function handshakes (c: Extract<LoadCommand, { cmd: 'handshakes' }>): Promise<LoadResult> {
  // After the warm-up (a fresh target compiles its handshake path meanwhile), the window counts what
  // completes inside it.
  const warmupMs = c.warmupMs ?? 0
  const end = nowMs() + warmupMs + c.seconds * 1000
  let window: Window | null = warmupMs === 0 ? new Window() : null
  const timers = [
    setTimeout(() => { window = new Window() }, warmupMs),
    setTimeout(() => { window?.end() }, warmupMs + c.seconds * 1000)
  ]
  let done = 0
  let failed = 0
  let firstError: string | undefined
  const lane = async (i: number): Promise<void> => {
    const localAddress = c.localAddresses[i % c.localAddresses.length]
    while (nowMs() < end) {
      try {
        const { socket } = await openWs(c.port, localAddress, HANDSHAKE_TIMEOUT_MS)
        await closeCleanly(socket)
        if (window !== null && nowMs() < end) done++
      } catch (err) {
        failed++
        firstError ??= (err as Error).message
        if (failed > 1000) return
      }
    }
  }
  await Promise.all(Array.from({ length: c.concurrency }, async (_, i) => { await lane(i) }))
  for (const timer of timers) clearTimeout(timer)
  return (window ?? new Window()).finish(done, failed, firstError)
}

/** Sends a Close and waits for the server's Close and the end of TCP (RFC 6455 §7.1.1: the server closes it). */
async function closeCleanly (socket: net.Socket): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { socket.destroy(); reject(new Error('no close from the server within 5 s')) }, HANDSHAKE_TIMEOUT_MS)
    socket.on('data', () => {})
    socket.once('end', () => { socket.end() })
    socket.once('close', () => { clearTimeout(timer); resolve() })
    socket.write(CLOSE_FRAME)
  })
}

const held: net.Socket[] = []

/** Opens `count` idle WebSockets and keeps them (answering keepalive Pings) until `release`. */
async function hold (c: Extract<LoadCommand, { cmd: 'hold' }>): Promise<LoadResult> {
  const window = new Window()
  let next = 0
  let failed = 0
  let firstError: string | undefined
  const lane = async (): Promise<void> => {
    while (next < c.count && failed < 100) {
      next++
      try {
        keep((await openWs(c.port, c.localAddress, HANDSHAKE_TIMEOUT_MS)).socket, held)
      } catch (err) {
        failed++
        firstError ??= (err as Error).message
      }
    }
  }
  await Promise.all(Array.from({ length: c.concurrency }, lane))
  return window.finish(held.length, failed, firstError)
}

async function release (): Promise<LoadResult> {
  const window = new Window()
  const closing = held.splice(0).map(async (socket) => {
    if (socket.destroyed) return
    await new Promise((resolve) => { socket.once('close', resolve); socket.destroy() })
  })
  await Promise.all(closing)
  return window.finish(closing.length, 0)
}

/** lwsc requests against a WebSocket echo of OPTIONS: one reused connection, a pool of 4, or a new client each time. */
async function lwsc (c: Extract<LoadCommand, { cmd: 'lwsc' }>): Promise<LoadResult> {
  const payload = optionsRequest('lwsc')
  const end = nowMs() + c.seconds * 1000
  let done = 0
  if (c.mode === 'fresh') {
    const window = new Window()
    while (nowMs() < end) {
      const client = new LwscClient({ poolSize: 1, keepaliveInterval: 0 })
      await client.requestProto(c.url, 'sip', payload)
      await client.close()
      done++
    }
    return window.finish(done, 0)
  }
  const poolSize = c.mode === 'pool' ? 4 : 1
  const lanes = c.mode === 'pool' ? 64 : 1
  const client = new LwscClient({ poolSize, keepaliveInterval: 0, queueSize: 1024 })
  await Promise.all(Array.from({ length: poolSize }, async () => await client.requestProto(c.url, 'sip', payload)))
  const window = new Window()
  const lane = async (): Promise<void> => {
    while (nowMs() < end) {
      await client.requestProto(c.url, 'sip', payload)
      done++
    }
  }
  await Promise.all(Array.from({ length: lanes }, lane))
  const result = window.finish(done, 0)
  await client.close()
  return result
}

/** HTTP GETs over keep-alive connections, `concurrency` in flight; a 200 counts, anything else fails. */
async function httpGets (c: Extract<LoadCommand, { cmd: 'http' }>): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: c.concurrency })
  const latencies = new Latencies()
  const end = nowMs() + c.seconds * 1000
  let done = 0
  let failed = 0
  let firstError: string | undefined
  const get = async (): Promise<void> => {
    const t = nowMs()
    await new Promise<void>((resolve) => {
      const req = http.get(c.url, { agent, timeout: HANDSHAKE_TIMEOUT_MS }, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (s: string) => { body += s })
        res.on('end', () => {
          if (res.statusCode === 200 && body.startsWith('SIP/2.0 200 OK')) { done++; latencies.add(nowMs() - t) } else { failed++; firstError ??= `${String(res.statusCode)} ${body.slice(0, 60)}` }
          resolve()
        })
      })
      req.on('timeout', () => { req.destroy(new Error('timeout')) })
      req.on('error', (err) => { failed++; firstError ??= err.message; resolve() })
    })
  }
  const window = new Window()
  await Promise.all(Array.from({ length: c.concurrency }, async () => { while (nowMs() < end && failed < 1000) await get() }))
  const result = window.finish(done, failed, firstError, latencies)
  agent.destroy()
  return result
}

const COMMANDS = { rtt: roundTrips, exact: exactRoundTrips, handshakes, hold, release, lwsc, http: httpGets, storm: async (c: StormCommand) => await storm(c, held) } as const

if (require.main === module) {
  if (process.send === undefined) throw new Error('bench/load.ts runs under run.ts (fork with IPC)')
  process.on('message', (m: LoadCommand | { cmd: 'go' }) => {
    if (m.cmd === 'go') return
    const run = COMMANDS[m.cmd] as (c: LoadCommand) => Promise<LoadResult>
    run(m).then((result) => { process.send?.({ result }) }, (err: unknown) => { process.send?.({ error: String((err as Error).stack ?? err) }) })
  })
  process.on('disconnect', () => { process.exit(0) })
  process.send({ ready: true })
}
