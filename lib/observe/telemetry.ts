import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify'
import type { IncomingMessage } from 'node:http'
import type { Connection } from '../connection/connection'
import { clientAddress } from '../handshake/peer'
import type { LogLevel } from '../options'
import type { WsClosedEvent } from '../types'
import { closeChannel, epochOf, handshakeChannel, hookChannel, messageChannel, openChannel, type HookChannelMessage } from './channels'

const kArrived = Symbol('fastify-sip-ws.arrived')
type Timed = IncomingMessage & { [kArrived]?: number }

/**
 * What the plugin tells about its connections: the open and closed log lines (at `logLevel`), and the
 * diagnostics_channel messages, each built only while its channel has subscribers. The one place that
 * publishes, so every message names this app and has one shape wherever it comes from.
 */
export class Telemetry {
  constructor (
    readonly app: FastifyInstance,
    private readonly log: FastifyBaseLogger,
    private readonly level: LogLevel
  ) {}

  /** Whether anyone listens for hook timings: asked before any clock is read. */
  get observed (): boolean {
    return hookChannel.hasSubscribers
  }

  /** An upgrade request arrived (Node's `'upgrade'` event): its handshake's clock starts. */
  handshakeStarted (req: IncomingMessage): void {
    (req as Timed)[kArrived] = performance.now()
    // Node caches a socket's peer address once read; a refused upgrade's socket is destroyed before the
    // refusal is reported, and `request.ip` would then have nothing to read.
    void req.socket?.remoteAddress
  }

  /** An upgrade request was answered: 101 with its connection, or a refusal's status. */
  handshakeEnded (request: FastifyRequest | null, status: number, conn: Connection | null): void {
    if (!handshakeChannel.hasSubscribers) return
    const now = performance.now()
    const arrived = request === null ? now : (request.raw as Timed)[kArrived] ?? now
    handshakeChannel.publish({
      app: this.app,
      request,
      result: conn === null ? 'refused' : 'accepted',
      status,
      id: conn?.id ?? null,
      subProtocol: conn?.subProtocol ?? null,
      remoteAddress: conn?.remoteAddress ?? (request === null ? '' : clientAddress(request)),
      startTime: epochOf(arrived),
      duration: now - arrived
    })
  }

  /** A connection dropped by `handshakeTimeout` before its request head was complete. */
  handshakeTimedOut (remoteAddress: string, waitedMs: number): void {
    if (!handshakeChannel.hasSubscribers) return
    const now = performance.now()
    handshakeChannel.publish({
      app: this.app, request: null, result: 'timed_out', status: 408, id: null, subProtocol: null, remoteAddress, startTime: epochOf(now - waitedMs), duration: waitedMs
    })
  }

  opened (conn: Connection): void {
    this.log[this.level]({ reqId: conn.logs.requestId, connId: conn.id, id: conn.id, remoteAddress: conn.remoteAddress, remotePort: conn.remotePort, subProtocol: conn.subProtocol }, 'fastify-sip-ws: connection open')
    if (!openChannel.hasSubscribers) return
    openChannel.publish({
      app: this.app, id: conn.id, subProtocol: conn.subProtocol, remoteAddress: conn.remoteAddress, remotePort: conn.remotePort, requestId: conn.logs.requestId, createdAt: conn.createdAt
    })
  }

  closed (conn: Connection, event: WsClosedEvent): void {
    const lifetime = Date.now() - conn.createdAt
    this.log[this.level]({ reqId: conn.logs.requestId, connId: conn.id, ...event, lifetime }, 'fastify-sip-ws: connection closed')
    if (!closeChannel.hasSubscribers) return
    closeChannel.publish({
      app: this.app, id: conn.id, subProtocol: conn.subProtocol, code: event.code, reason: event.reason, by: event.by, requestId: conn.logs.requestId, createdAt: conn.createdAt, lifetime
    })
  }

  /** A message received or sent; callers ask `messageChannel.hasSubscribers` first, so none is built for nobody. */
  message (conn: Connection, direction: 'in' | 'out', binary: boolean, size: number): void {
    messageChannel.publish({ app: this.app, id: conn.id, subProtocol: conn.subProtocol, direction, binary, size })
  }

  /** A hook call that began at `startedAt` (performance.now()) settled now. */
  hook (hook: HookChannelMessage['hook'], id: number | null, outcome: HookChannelMessage['outcome'], startedAt: number): void {
    const message: HookChannelMessage = { app: this.app, hook, id, outcome, startTime: epochOf(startedAt), duration: performance.now() - startedAt }
    hookChannel.publish(message)
  }
}
