import type { FastifyInstance } from 'fastify'
import { once } from 'node:events'
import WebSocket from 'ws'
import type { ExampleOptions } from '../../example/options'
import { buildServer } from '../../example/server'
import { type SipMessage } from '../../example/sip/message'
import { parseSip } from '../../example/sip/parse'
import { edgeLogger, failOnUnexplainedDrops } from '../helpers/drops'
import { within as withinMs } from '../helpers/pool'
import type { LogEntry } from '../helpers/server'

export interface Example {
  app: FastifyInstance
  /** What the edge logged at info and above (everything at debug with EDGE_LOG set). */
  log: LogEntry[]
  port: number
  /** `http://127.0.0.1:<port>/` (or the host it listens on) */
  httpUrl: string
  /** `ws://127.0.0.1:<port>/` (or the host it listens on) */
  wsUrl: string
}

export interface StartOptions {
  /** Address to listen on (127.0.0.1); the URLs name it. */
  host?: string
  /** Runs before the server listens: to add hooks a test watches with. */
  setup?: (app: FastifyInstance) => void
}

/**
 * The example server on 127.0.0.1 (or `host`) and a free port. Its log is recorded, and closing it
 * fails when it dropped a message without saying why (helpers/drops.ts).
 */
export async function startExample (options: ExampleOptions = {}, { host = '127.0.0.1', setup }: StartOptions = {}): Promise<Example> {
  const { logger, entries } = edgeLogger()
  const app = await buildServer({ logger, ...options })
  failOnUnexplainedDrops(app, entries)
  setup?.(app)
  await app.listen({ host, port: 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('the example server has no port')
  const authority = `${host.includes(':') ? `[${host}]` : host}:${address.port}`
  return { app, log: entries, port: address.port, httpUrl: `http://${authority}/`, wsUrl: `ws://${authority}/` }
}

/** Rejects with a message naming what was awaited when `ms` pass first (argument order reads well in the e2e steps). */
export async function within<T> (ms: number, what: string, promise: Promise<T>): Promise<T> {
  return await withinMs(promise, ms, () => `waiting for ${what}`)
}

/** The HTTP status of a refused WebSocket handshake, or 101 when it was accepted. */
export async function handshakeStatus (url: string, options: WebSocket.ClientOptions = {}, protocol = 'sip'): Promise<{ status: number, body: string }> {
  const ws = new WebSocket(url, protocol, options)
  return await within(5000, 'the handshake', new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.terminate()
      resolve({ status: 101, body: '' })
    })
    ws.once('unexpected-response', (_req, res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body }) })
      res.on('error', reject)
    })
    ws.once('error', (err) => { if (ws.readyState !== WebSocket.CLOSED) reject(err) })
  }))
}

/** A WebSocket message as received: its bytes, as text, and whether it came in a binary frame. */
export interface RawMessage { raw: string, data: Buffer, binary: boolean }

let counter = 0
const unique = (): string => `${process.pid}-${Date.now().toString(36)}-${++counter}`

/**
 * A bare SIP-over-WebSocket peer for tests that need to see and shape exact messages: it sends text
 * frames and queues what it receives, raw and parsed.
 */
export class RawSipClient {
  readonly received: RawMessage[] = []
  private readonly waiters: Array<(message: RawMessage) => void> = []
  /** Made-up contact host, as RFC 7118 §5.2 UAs do. */
  readonly host = `${unique().replace(/[^a-z0-9]/g, '')}.invalid`

  private constructor (readonly ws: WebSocket, readonly user: string, readonly localPort: number) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const message = { raw: data.toString(), data, binary: isBinary }
      const waiter = this.waiters.shift()
      if (waiter !== undefined) waiter(message)
      else this.received.push(message)
    })
  }

  static async connect (url: string, user: string, options: WebSocket.ClientOptions = {}): Promise<RawSipClient> {
    const ws = new WebSocket(url, 'sip', options)
    let localPort = 0
    ws.once('upgrade', (res) => { localPort = res.socket.localPort ?? 0 })
    await within(5000, `${user}'s WebSocket to open`, new Promise<void>((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
      ws.once('unexpected-response', (_req, res) => { reject(new Error(`handshake refused: ${String(res.statusCode)}`)) })
    }))
    return new RawSipClient(ws, user, localPort)
  }

  /** The server's id for this connection (found by our port in `wsDump()`). */
  idIn (app: FastifyInstance): number {
    const entry = app.wsDump().connections.find((c) => c.remotePort === this.localPort)
    if (entry === undefined) throw new Error(`${this.user}'s connection is not in wsDump()`)
    return entry.id
  }

  get contact (): string {
    return `sip:${this.user}-c@${this.host};transport=ws`
  }

  send (data: string | Buffer): void {
    this.ws.send(data)
  }

  /** The next message, raw. */
  async nextRaw (ms = 3000): Promise<RawMessage> {
    const queued = this.received.shift()
    if (queued !== undefined) return queued
    return await within(ms, `a message for ${this.user}`, new Promise((resolve) => { this.waiters.push(resolve) }))
  }

  async next (ms = 3000): Promise<SipMessage> {
    return parseSip((await this.nextRaw(ms)).data)
  }

  /** A request with the headers RFC 3261 §8.1.1 requires; `headers` adds or overrides. */
  request (method: string, uri: string, options: { to?: string, headers?: Record<string, string>, body?: string, branch?: string, cseq?: number, callId?: string } = {}): string {
    const headers: Record<string, string> = {
      Via: `SIP/2.0/WS ${this.host};branch=${options.branch ?? `z9hG4bK${unique()}`}`,
      'Max-Forwards': '70',
      To: `<${options.to ?? uri}>`,
      From: `<sip:${this.user}@example.test>;tag=${unique()}`,
      'Call-ID': options.callId ?? unique(),
      CSeq: `${options.cseq ?? 1} ${method}`,
      Contact: `<${this.contact}>`,
      ...options.headers
    }
    const body = options.body ?? ''
    let text = `${method} ${uri} SIP/2.0\r\n`
    for (const [name, value] of Object.entries(headers)) if (value !== '') text += `${name}: ${value}\r\n`
    return `${text}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  }

  /** The response a UAS would send: the request's Via, From, To (tagged), Call-ID and CSeq copied. */
  answer (request: SipMessage, status: number, reason: string, extra: Record<string, string> = {}): string {
    let text = `SIP/2.0 ${status} ${reason}\r\n`
    for (const via of request.getAll('via')) text += `Via: ${via}\r\n`
    text += `From: ${request.get('from') ?? ''}\r\nTo: ${request.get('to') ?? ''};tag=${this.user}\r\n`
    text += `Call-ID: ${request.get('call-id') ?? ''}\r\nCSeq: ${request.get('cseq') ?? ''}\r\n`
    for (const [name, value] of Object.entries(extra)) text += `${name}: ${value}\r\n`
    return `${text}Content-Length: 0\r\n\r\n`
  }

  async register (domain = 'example.test', expires = 600): Promise<SipMessage> {
    this.send(this.request('REGISTER', `sip:${domain}`, { to: `sip:${this.user}@${domain}`, headers: { Expires: String(expires) } }))
    return await this.next()
  }

  async close (code = 1000, reason = 'bye'): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return
    const closed = once(this.ws, 'close')
    this.ws.close(code, reason)
    await within(5000, `${this.user}'s WebSocket to close`, closed)
  }
}
