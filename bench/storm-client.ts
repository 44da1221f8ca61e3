/**
 * One load process's share of a reconnect storm (bench/storm.ts): `clients` WebSockets opened at the same
 * instant, as the clients of a node that died all reconnect to a survivor. A client answered 503 waits
 * what its Retry-After says and comes back; one refused otherwise, or not open by the deadline, failed.
 * Open sockets are kept (answering keepalive Pings) until the driver's `release`.
 */
import type net from 'node:net'
import { nowMs, Window, type LoadResult } from './window'
import { FrameSplitter, OP_CLOSE, OP_PING, openWs, pongFrame, Refused } from './wire'

export interface StormCommand {
  cmd: 'storm'
  port: number
  clients: number
  localAddresses: string[]
  /** When to start, in ms of the monotonic clock every process shares (process.hrtime). */
  startAt: number
  /** After this many ms from the start, no client tries again. */
  deadlineMs: number
  /** One attempt's bound, from connect() to the 101. */
  attemptTimeoutMs: number
}

export interface StormResult extends LoadResult {
  /** 503 answers received (a client refused twice counts twice). */
  refused: number
  /** Clients that were refused with 503 at least once and then opened. */
  cameBack: number
  /** ms from the start until this process's last client was open. */
  lastOpenMs: number
  /** Each opened client's handshake latency (connect() to 101 of its successful attempt), ms. */
  samples: number[]
}

/** Keeps an open socket: answers Pings, and lets it go when the server closes it. */
export function keep (socket: net.Socket, held: net.Socket[]): void {
  const splitter = new FrameSplitter((opcode, payload) => {
    if (opcode === OP_PING) socket.write(pongFrame(payload))
    if (opcode === OP_CLOSE) socket.destroy()
  })
  socket.on('data', (chunk: Buffer) => { splitter.push(chunk) })
  socket.on('error', () => {})
  held.push(socket)
}

export async function storm (c: StormCommand, held: net.Socket[]): Promise<StormResult> {
  const wait = c.startAt - nowMs()
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
  const window = new Window()
  const deadline = c.startAt + c.deadlineMs
  const samples: number[] = []
  let refused = 0
  let cameBack = 0
  let failed = 0
  let lastOpen = 0
  let firstError: string | undefined
  const client = async (i: number): Promise<void> => {
    const localAddress = c.localAddresses[i % c.localAddresses.length]
    let wasRefused = false
    while (nowMs() < deadline) {
      const t0 = nowMs()
      try {
        const { socket } = await openWs(c.port, localAddress, Math.min(c.attemptTimeoutMs, Math.max(1, deadline - t0)))
        const t1 = nowMs()
        samples.push(t1 - t0)
        lastOpen = Math.max(lastOpen, t1 - c.startAt)
        keep(socket, held)
        if (wasRefused) cameBack++
        return
      } catch (err) {
        if (!(err instanceof Refused) || err.status !== 503) {
          failed++
          firstError ??= (err as Error).message
          return
        }
        refused++
        wasRefused = true
        // What a well-behaved client does: come back after Retry-After (1 s when the answer gave none).
        await new Promise((resolve) => setTimeout(resolve, Math.min((err.retryAfter ?? 1) * 1000, Math.max(0, deadline - nowMs()))))
      }
    }
    failed++
    firstError ??= `not open within the storm's ${c.deadlineMs} ms`
  }
  await Promise.all(Array.from({ length: c.clients }, async (_, i) => { await client(i) }))
  return { ...window.finish(samples.length, failed, firstError), refused, cameBack, lastOpenMs: lastOpen, samples }
}
