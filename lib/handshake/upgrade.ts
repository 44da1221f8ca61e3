import type { FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingMessage, Server } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Stats } from '../connection/stats'
import type { Hooks } from '../hooks'
import type { Telemetry } from '../observe/telemetry'
import type { Settings } from '../options'
import type { Acceptor } from './accept'
import type { Admission } from './admission'
import { supportedHeaders } from './checks'
import { normalizeInjectedHeaders } from './injected'
import { peerAddress } from './peer'
import { refuse, type Refusal } from './refusal'

/** The path of a request URL, without its query, repeated slashes taken as one. */
export function pathOf (url: string): string {
  const query = url.indexOf('?')
  const path = query === -1 ? url : url.slice(0, query)
  // Kamailio's lwsc asks for `//` when given `ws://host:port/`; Kamailio's own server takes any path.
  return path.includes('//') ? path.replace(/\/{2,}/g, '/') : path
}

const EMPTY = Buffer.alloc(0)
const kUpgrade = Symbol('fastify-sip-ws.upgrade')

type Marked = IncomingMessage & { [kUpgrade]?: true }

/** Whether Node handed this request over as an upgrade: what the WebSocket routes' constraint asks. */
export function isUpgrade (req: IncomingMessage): boolean {
  return (req as Marked)[kUpgrade] === true
}

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
  telemetry: Telemetry
}

/**
 * An upgrade request from its arrival to its answer. Node's `'upgrade'` event marks it (and keeps the bytes
 * behind its head); Fastify routes it to the WebSocket path's route (route.ts), through every hook the app
 * and its plugins added; the route's handler, this class's `handle`, plays Kamailio's
 * `event_route[xhttp:request]`: it runs the `xhttp:request` hooks, then admission's checks, then either
 * refuses or hands the socket to the acceptor. A plain request on the path goes to the app's own route if it
 * has one; a plain GET with none gets 400, as a WebSocket endpoint would answer it.
 *
 * The `xhttp:request` hooks are bounded: one still running after `hookTimeout`, or when the server shuts
 * down, gets its request a 503, so neither a hung hook nor `app.close()` holds the socket. Whatever a hook
 * throws is Fastify's error handling (500 or the error's statusCode), never an unhandled rejection.
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
   * routes the request through Fastify from inside its own listener: an injected request's headers are made
   * what Node would give before any hook or ws reads them, and a path written with repeated slashes is
   * routed as the WebSocket path it names.
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
    ;(req as Marked)[kUpgrade] = true
    this.parts.telemetry.handshakeStarted(req)
    if (head.length > 0) this.heads.set(req, head)
    // Routed as the path it names: find-my-way takes "//" for a path of its own.
    const url = req.url ?? '/'
    const query = url.indexOf('?')
    if (!(query === -1 ? url : url.slice(0, query)).includes('//')) return
    const path = pathOf(url)
    if (this.settings.paths.has(path)) req.url = query === -1 ? path : path + url.slice(query)
  }

  /** An `onRequest` hook: a plain GET on a WebSocket path that the app has no route for gets 400. */
  readonly plainRequest = (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void => {
    if (!request.is404 || request.method !== 'GET' || request.ws === true || !this.settings.paths.has(pathOf(request.url))) return done()
    void reply.code(400).headers(supportedHeaders(this.settings.enabledProtocols)).type('text/plain; charset=utf-8')
      .send('This path expects a WebSocket upgrade (Upgrade: websocket, Connection: Upgrade)')
  }

  /** The WebSocket routes' handler: every Fastify hook before it has let the request through. */
  readonly handle = (request: FastifyRequest, reply: FastifyReply): void => {
    // The router is lenient where a WebSocket path is exact: a fragment ("/#x"), or another case or a
    // trailing slash under the app's caseSensitive and ignoreTrailingSlash, is another path.
    if (!this.settings.paths.has(pathOf(request.url))) {
      void reply.callNotFound()
      return
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
        void reply.send(err)
      }
    }, (err: Error) => {
      // Already answered 503 by a timeout or shutdown: the error is only worth a log line.
      if (this.settle(reply)) void reply.send(err)
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
    // A callback-style hook that replied itself never calls done: its reply is the answer.
    if (reply.sent) return
    const { hookTimeout } = this.settings
    pending.request.log.warn({ hookTimeout, url: pending.request.url }, 'fastify-sip-ws: xhttp:request hook still running after hookTimeout; answering 503')
    this.refuse(pending.request, reply, { status: 503, message: `The server could not decide on this upgrade within ${hookTimeout} ms` })
  }
}
