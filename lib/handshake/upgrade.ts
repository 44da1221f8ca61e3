import type { FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingMessage, Server } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Stats } from '../connection/stats'
import type { Hooks } from '../hooks'
import type { Settings } from '../options'
import type { Acceptor } from './accept'
import type { Admission } from './admission'
import { supportedHeaders } from './checks'
import { normalizeInjectedHeaders } from './injected'
import { peerAddress } from './peer'
import { refuse, type Refusal } from './refusal'

function pathOf (url: string): string {
  const query = url.indexOf('?')
  const path = query === -1 ? url : url.slice(0, query)
  // Kamailio's lwsc asks for `//` when given `ws://host:port/`; Kamailio's own server takes any path.
  return path.includes('//') ? path.replace(/\/{2,}/g, '/') : path
}

const EMPTY = Buffer.alloc(0)

interface Pending {
  request: FastifyRequest
  timer: NodeJS.Timeout
}

/** The parts an upgrade request goes through, in order. */
export interface UpgradeParts {
  hooks: Hooks
  admission: Admission
  acceptor: Acceptor
  stats: Stats
}

/**
 * An upgrade request from its arrival to its answer, in one place: the `onRequest` hook that plays
 * Kamailio's `event_route[xhttp:request]` runs the `xhttp:request` hooks, then admission's checks, then
 * either refuses or hands the socket to the acceptor. It runs before routing has any say, so the app may
 * still serve its own HTTP routes on the same path (a page at `/`, say); a plain GET on a WebSocket path
 * with no route of its own gets 400, as a WebSocket endpoint would answer it.
 *
 * The hooks are bounded: one still running after `hookTimeout`, or when the server shuts down, gets its
 * request a 503, so neither a hung hook nor `app.close()` holds the socket. Whatever a hook throws is
 * Fastify's error handling (500 or the error's statusCode), never an unhandled rejection.
 */
export class UpgradeRequests {
  private readonly pending = new Map<FastifyReply, Pending>()
  /**
   * The bytes that came right behind each upgrade request's head: almost always none, but a client may send
   * its first frame without waiting for the 101, and losing them would lose that frame.
   */
  private readonly heads = new WeakMap<IncomingMessage, Buffer>()
  private listeningOn: Server | null = null

  constructor (private readonly settings: Settings, private readonly parts: UpgradeParts) {}

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
    if (head.length > 0) this.heads.set(req, head)
  }

  readonly onRequest = (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void => {
    if (!this.settings.paths.has(pathOf(request.url))) return done()
    if (request.ws !== true) {
      if (request.is404 && request.method === 'GET') {
        void reply.code(400).headers(supportedHeaders(this.settings.enabledProtocols)).type('text/plain; charset=utf-8')
          .send('This path expects a WebSocket upgrade (Upgrade: websocket, Connection: Upgrade)')
        return
      }
      return done()
    }
    const { hooks, admission } = this.parts
    if (!hooks.has('xhttp:request')) {
      this.handshake(request, reply)
      return
    }
    const leaving = admission.leavingRefusal()
    if (leaving !== null) {
      this.refuse(request, reply, leaving)
      return
    }
    this.pending.set(reply, { request, timer: setTimeout(this.onHookTimeout, this.settings.hookTimeout, reply) })
    hooks.runRequest('xhttp:request', request, reply).then((refused) => {
      if (!this.settle(reply) || refused || reply.sent) return
      try {
        this.handshake(request, reply)
      } catch (err) {
        done(err as Error)
      }
    }, (err: Error) => {
      // Already answered 503 by a timeout or shutdown: the error is only worth a log line.
      if (this.settle(reply)) done(err)
      else request.log.warn({ err }, 'fastify-sip-ws: xhttp:request hook failed after its request was answered')
    })
  }

  /**
   * The handshake step after the `xhttp:request` hooks let a request through: Kamailio's
   * `ws_handle_handshake()`. Either refuses with an HTTP reply or takes the socket over.
   */
  private handshake (request: FastifyRequest, reply: FastifyReply): void {
    // The response's socket: an injected request (injectWS) has one there, and none on the request.
    const peer = peerAddress(request, (reply.raw.socket ?? request.raw.socket) as Socket | null)
    const admitted = this.parts.admission.admit(request, peer.remoteAddress)
    if (!('protocol' in admitted)) {
      this.refuse(request, reply, admitted)
      return
    }
    const head = this.heads.get(request.raw) ?? EMPTY
    this.heads.delete(request.raw)
    this.parts.acceptor.accept(request, reply, head, admitted.protocol, peer)
  }

  private refuse (request: FastifyRequest, reply: FastifyReply, refusal: Refusal): void {
    refuse(request, reply, refusal, this.parts.stats)
  }

  /** At shutdown: every request still in its `xhttp:request` hooks gets 503. */
  refusePending (refusal: Refusal): void {
    for (const [reply, { request }] of [...this.pending]) {
      this.settle(reply)
      this.refuse(request, reply, refusal)
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
    const { hookTimeout } = this.settings
    pending.request.log.warn({ hookTimeout, url: pending.request.url }, 'fastify-sip-ws: xhttp:request hook still running after hookTimeout; answering 503')
    this.refuse(pending.request, reply, { status: 503, message: `The server could not decide on this upgrade within ${hookTimeout} ms` })
  }
}
