import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { once } from 'node:events'
import WebSocket from 'ws'
import sipWs, { type SipWsOptions } from '../../lib'

export interface Started {
  app: FastifyInstance
  port: number
  url: string
}

/** A Fastify app with the plugin, listening on 127.0.0.1 and a free port. */
export async function startApp (options: SipWsOptions = {}, setup?: (app: FastifyInstance) => void | Promise<void>, fastifyOptions: FastifyServerOptions = { logger: false }): Promise<Started> {
  const app = Fastify(fastifyOptions)
  await app.register(sipWs, options)
  if (setup !== undefined) await setup(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return { app, port: address.port, url: `ws://127.0.0.1:${address.port}` }
}

/** A ws client, open; rejects on an unexpected HTTP response. */
export async function connect (url: string, protocols: string | string[] = 'sip', options: WebSocket.ClientOptions = {}): Promise<WebSocket> {
  const ws = new WebSocket(url, protocols, options)
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('error', reject)
    ws.once('unexpected-response', (_req, res) => { reject(new Error(`unexpected response ${String(res.statusCode)}`)) })
  })
  return ws
}

/** Resolves with the close code and reason the client saw. */
export async function closed (ws: WebSocket): Promise<{ code: number, reason: string }> {
  if (ws.readyState === WebSocket.CLOSED) throw new Error('already closed')
  const [code, reason] = await once(ws, 'close') as [number, Buffer]
  return { code, reason: reason.toString() }
}

export async function nextMessage (ws: WebSocket): Promise<{ data: Buffer, isBinary: boolean }> {
  const [data, isBinary] = await once(ws, 'message') as [Buffer, boolean]
  return { data, isBinary }
}

export interface LogEntry { level: number, msg?: string, [field: string]: unknown }

/**
 * Fastify options whose logger keeps every entry at `level` and above, for tests that assert on logs;
 * `next(match)` resolves with the first entry (already logged or to come) whose message includes `match`.
 */
export function loggedApp (level = 'warn'): { fastifyOptions: FastifyServerOptions, entries: LogEntry[], next: (match: string) => Promise<LogEntry> } {
  const entries: LogEntry[] = []
  const waiters: Array<{ match: string, resolve: (e: LogEntry) => void }> = []
  const matches = (e: LogEntry, match: string): boolean => e.msg?.includes(match) === true
  return {
    entries,
    next: async (match) => {
      const seen = entries.find((e) => matches(e, match))
      if (seen !== undefined) return seen
      return await new Promise((resolve) => { waiters.push({ match, resolve }) })
    },
    fastifyOptions: {
      logger: {
        level,
        stream: {
          write: (line: string) => {
            const entry = JSON.parse(line) as LogEntry
            entries.push(entry)
            for (let i = waiters.length - 1; i >= 0; i--) {
              if (matches(entry, waiters[i].match)) waiters.splice(i, 1)[0].resolve(entry)
            }
          }
        }
      }
    }
  }
}

/**
 * One handshake attempt, as a reconnecting client makes it: resolves with what it got, `accepted`, `503
 * Retry-After 5` (status and Retry-After) or the socket error's code (`ECONNREFUSED`), and closes it.
 */
export async function handshakeOutcome (url: string): Promise<string> {
  const ws = new WebSocket(url, 'sip')
  return await new Promise((resolve) => {
    ws.on('unexpected-response', (_req, res) => { resolve(`${String(res.statusCode)} Retry-After ${String(res.headers['retry-after'])}`); res.resume(); ws.terminate() })
    ws.on('open', () => { resolve('accepted'); ws.terminate() })
    ws.on('error', (err: NodeJS.ErrnoException) => { resolve(err.code ?? err.message) })
  })
}

/** Counts outcomes by name; `all` resolves once `expected` have been counted. */
export function tally (expected: number): { counts: Map<string, number>, add: (key: string) => void, all: Promise<void> } {
  const counts = new Map<string, number>()
  let seen = 0
  let done: () => void = () => {}
  const all = new Promise<void>((resolve) => { done = resolve })
  return {
    counts,
    all,
    add: (key) => {
      counts.set(key, (counts.get(key) ?? 0) + 1)
      if (++seen === expected) done()
    }
  }
}
