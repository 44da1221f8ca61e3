import type { FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingMessage, Server } from 'node:http'
import type { Duplex } from 'node:stream'
import { supportedHeaders, type Refusal } from './handshake'
import type { Hooks } from './hooks'
import { normalizeInjectedHeaders } from './injected'
import type { WsServer } from './server'

function pathOf (url: string): string {
  const query = url.indexOf('?')
  const path = query === -1 ? url : url.slice(0, query)
  // Kamailio's lwsc asks for `//` when given `ws://host:port/`; Kamailio's own server takes any path.
  return path.includes('//') ? path.replace(/\/{2,}/g, '/') : path
}

const kHead = Symbol('fastify-sip-ws.head')
const EMPTY = Buffer.alloc(0)

/**
 * The bytes that came right behind an upgrade request's head: almost always none, but a client may send its
 * first frame without waiting for the 101, and losing them would lose that frame.
 */
export function upgradeHead (raw: IncomingMessage): Buffer {
  return (raw as IncomingMessage & { [kHead]?: Buffer })[kHead] ?? EMPTY
}

interface Pending {
  request: FastifyRequest
  timer: NodeJS.Timeout
}

/**
 * The `onRequest` hook that plays Kamailio's `event_route[xhttp:request]`: on a WebSocket path, an upgrade
 * request runs the `xhttp:request` hooks and then the handshake. It runs before routing has any say, so
 * the app may still serve its own HTTP routes on the same path (a page at `/`, say); a plain GET on a
 * WebSocket path with no route of its own gets 400, as a WebSocket endpoint would answer it.
 *
 * The hooks are bounded: one still running after `hookTimeout`, or when the server shuts down, gets its
 * request a 503, so neither a hung hook nor `app.close()` holds the socket. Whatever a hook throws is
 * Fastify's error handling (500 or the error's statusCode), never an unhandled rejection.
 */
export class UpgradeRequests {
  private readonly pending = new Map<FastifyReply, Pending>()
  private listeningOn: Server | null = null

  constructor (private readonly server: WsServer, private readonly hooks: Hooks) {}

  /**
   * Node hands those bytes only to `'upgrade'` listeners. Ours goes in front of @fastify/websocket's, which
   * routes the request through Fastify (and so to `onRequest`) from inside its own listener: an injected
   * request's headers are made what Node would give before any hook or ws reads them.
   */
  listen (httpServer: Server): void {
    httpServer.prependListener('upgrade', this.onUpgrade)
    this.listeningOn = httpServer
  }

  /** At shutdown: @fastify/websocket routes no more upgrades, and a listener left here would look like one that does. */
  stopListening (): void {
    this.listeningOn?.off('upgrade', this.onUpgrade)
    this.listeningOn = null
  }

  private readonly onUpgrade = (req: IncomingMessage, _socket: Duplex, head: Buffer): void => {
    normalizeInjectedHeaders(req)
    if (head.length > 0) (req as IncomingMessage & { [kHead]?: Buffer })[kHead] = head
  }

  readonly onRequest = (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void => {
    const { paths, enabledProtocols } = this.server.settings
    if (!paths.has(pathOf(request.url))) return done()
    if (request.ws !== true) {
      if (request.is404 && request.method === 'GET') {
        void reply.code(400).headers(supportedHeaders(enabledProtocols)).type('text/plain; charset=utf-8')
          .send('This path expects a WebSocket upgrade (Upgrade: websocket, Connection: Upgrade)')
        return
      }
      return done()
    }
    if (!this.hooks.has('xhttp:request')) {
      this.server.upgrade(request, reply)
      return
    }
    const leaving = this.server.leavingRefusal()
    if (leaving !== null) {
      this.server.refuse(request, reply, leaving)
      return
    }
    this.pending.set(reply, { request, timer: setTimeout(this.onHookTimeout, this.server.settings.hookTimeout, reply) })
    this.hooks.runRequest('xhttp:request', request, reply).then((refused) => {
      if (!this.settle(reply) || refused || reply.sent) return
      try {
        this.server.upgrade(request, reply)
      } catch (err) {
        done(err as Error)
      }
    }, (err: Error) => {
      // Already answered 503 by a timeout or shutdown: the error is only worth a log line.
      if (this.settle(reply)) done(err)
      else request.log.warn({ err }, 'fastify-sip-ws: xhttp:request hook failed after its request was answered')
    })
  }

  /** At shutdown: every request still in its `xhttp:request` hooks gets 503. */
  refusePending (refusal: Refusal): void {
    for (const [reply, { request }] of [...this.pending]) {
      this.settle(reply)
      this.server.refuse(request, reply, refusal)
    }
  }

  /** Stops tracking a request; false when it was answered already (timed out, or refused at shutdown). */
  private settle (reply: FastifyReply): boolean {
    const pending = this.pending.get(reply)
    if (pending === undefined) return false
    clearTimeout(pending.timer)
    this.pending.delete(reply)
    return true
  }

  private readonly onHookTimeout = (reply: FastifyReply): void => {
    const pending = this.pending.get(reply)
    if (pending === undefined) return
    this.pending.delete(reply)
    const { hookTimeout } = this.server.settings
    pending.request.log.warn({ hookTimeout, url: pending.request.url }, 'fastify-sip-ws: xhttp:request hook still running after hookTimeout; answering 503')
    this.server.refuse(pending.request, reply, { status: 503, message: `The server could not decide on this upgrade within ${hookTimeout} ms` })
  }
}
