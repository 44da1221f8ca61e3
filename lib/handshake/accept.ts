import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import { WebSocketServer, type WebSocket } from 'ws'
import { CLOSE_PROTOCOL_ERROR, CLOSE_REASONS, FRAME_ERROR_CLOSE_CODES } from '../constants'
import type { CurrentMessage } from '../connection/current-message'
import { Connection, withLog } from '../connection/connection'
import { MESSAGE_OVERHEAD, type HookDispatcher } from '../connection/hook-queue'
import { MessageEvent } from '../connection/message-event'
import type { Keepalive } from '../connection/keepalive'
import type { Registry } from '../connection/registry'
import type { Stats } from '../connection/stats'
import type { Hooks } from '../hooks'
import { messageChannel } from '../observe/channels'
import type { Telemetry } from '../observe/telemetry'
import type { Settings } from '../options'
import type { ConnectionAddress, WsMessage } from '../types'
import { corsHeader } from './checks'
import { closeWhenBothEnded, isInjected } from './injected'
import { frameParser, releaseResponse } from './internals'

const kConnection = Symbol('fastify-sip-ws.connection')
const kProtocol = Symbol('fastify-sip-ws.protocol')
const kHeaders = Symbol('fastify-sip-ws.headers')

type Tagged<T> = T & { [kConnection]?: Connection }
type ChosenFor = IncomingMessage & { [kProtocol]?: string, [kHeaders]?: string[] }

// The handshake's own headers, and those that describe a body or a connection a 101 does not have.
const NOT_ON_101 = /^(connection|upgrade|sec-websocket-.*|content-(length|type|encoding)|transfer-encoding|keep-alive|date)$/

/**
 * The headers hooks put on the reply (@fastify/helmet's, @fastify/rate-limit's, a hook's own `reply.header`),
 * as lines for the 101: an upgrade gets what a route's response gets, except what only a body or the
 * handshake itself may say.
 */
function replyHeaderLines (reply: FastifyReply, skip: string | null): string[] {
  const lines: string[] = []
  for (const [name, value] of Object.entries(reply.getHeaders())) {
    const lower = name.toLowerCase()
    if (value === undefined || NOT_ON_101.test(lower) || lower === skip) continue
    for (const one of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${String(one)}`)
  }
  return lines
}

/** The parts a connection's frames and close reach. */
export interface AcceptParts {
  registry: Registry
  stats: Stats
  keepalive: Keepalive
  dispatcher: HookDispatcher<Connection>
  hooks: Hooks
  current: CurrentMessage
  log: FastifyBaseLogger
  telemetry: Telemetry
}

/**
 * Takes an admitted upgrade's socket over (ws's `handleUpgrade`), makes its Connection, and listens to it
 * until it is gone. Listeners are created once here and shared by all sockets (they find their connection
 * through a symbol on the socket), so a connection costs no closures of its own.
 */
export class Acceptor {
  private readonly wss: WebSocketServer
  private readonly on: ReturnType<typeof socketListeners>

  constructor (settings: Settings, private readonly parts: AcceptParts) {
    this.on = socketListeners(parts)
    this.wss = new WebSocketServer({
      noServer: true,
      // The registry tracks connections; ws's own Set would only duplicate it.
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: settings.maxPayload,
      handleProtocols: (_offered, req: ChosenFor) => req[kProtocol] ?? false,
      closeTimeout: settings.closeTimeout
    } as ConstructorParameters<typeof WebSocketServer>[0])
    this.wss.on('headers', (headers: string[], req: ChosenFor) => {
      const header = corsHeader(settings.corsMode, req.headers.origin)
      if (header !== null) headers.push(header)
      const extra = req[kHeaders]
      if (extra !== undefined) headers.push(...extra)
    })
    // corsMode's header is the one the 101 carries; another plugin's (@fastify/cors) would make two.
    this.ownHeader = settings.corsMode === 0 ? null : 'access-control-allow-origin'
  }

  private readonly ownHeader: string | null

  /** Answers 101 with `protocol` and opens the connection; `head` is what came behind the request head. */
  accept (request: FastifyRequest, reply: FastifyReply, head: Buffer, protocol: string, peer: ConnectionAddress): void {
    const raw = request.raw as ChosenFor
    // The response's socket: an injected request (injectWS) has one there, and none on the request.
    const socket = (reply.raw.socket ?? raw.socket) as Socket
    raw[kProtocol] = protocol
    const extra = replyHeaderLines(reply, this.ownHeader)
    if (extra.length > 0) raw[kHeaders] = extra
    reply.hijack()
    this.wss.handleUpgrade(raw, socket, head, (ws) => {
      // @fastify/websocket assigned a ServerResponse to the socket to route the request; nothing writes it
      // now, yet it would keep the request and reply alive: about half of what an idle connection costs.
      releaseResponse(reply.raw, socket)
      if (isInjected(raw)) closeWhenBothEnded(socket)
      this.open(ws, request, protocol, peer)
    })
  }

  /** No more upgrades: at the end of shutdown. */
  close (): void {
    this.wss.close()
  }

  private open (ws: WebSocket, request: FastifyRequest, protocol: string, peer: ConnectionAddress): void {
    const { registry, stats, keepalive, dispatcher, hooks, log, telemetry } = this.parts
    const now = Date.now()
    const subProtocol = protocol.toLowerCase()
    const conn = new Connection(registry.nextId(), peer, subProtocol, ws, stats.forProtocol(subProtocol), now, String(request.id), log)
    registry.add(conn)
    keepalive.heard(conn, now)
    stats.opened(conn.counters)
    ;(ws as Tagged<WebSocket>)[kConnection] = conn
    ws.on('message', this.on.message)
    ws.on('ping', this.on.control)
    ws.on('pong', this.on.control)
    ws.on('error', this.on.error)
    ws.on('close', this.on.close)
    // ws answers a peer's Close by echoing its code, and a protocol error with a bare code; listeners put in
    // front of ws's own on its frame parser answer as Kamailio does first, and ws then sends nothing more.
    const receiver = frameParser(ws) as Tagged<NodeJS.EventEmitter>
    receiver[kConnection] = conn
    receiver.prependListener('conclude', this.on.conclude)
    receiver.prependListener('error', this.on.frameError)
    telemetry.handshakeEnded(request, 101, conn)
    telemetry.opened(conn)
    if (hooks.has('websocket:open')) {
      dispatcher.dispatch(conn, 'websocket:open', withLog(conn.logs, {
        id: conn.id,
        subProtocol: conn.subProtocol,
        remoteAddress: conn.remoteAddress,
        remotePort: conn.remotePort,
        socketAddress: conn.socketAddress,
        socketPort: conn.socketPort,
        localAddress: conn.localAddress,
        localPort: conn.localPort,
        request
      }), 0, now)
    }
  }
}

/**
 * The listeners every socket shares (`this` is the WebSocket, or its frame parser): one set per server, so a
 * connection costs no closures of its own.
 */
function socketListeners (parts: AcceptParts) {
  return { ...frameListeners(parts), ...endListeners(parts) }
}

/** What the peer sends. */
function frameListeners ({ registry, stats, keepalive, dispatcher, hooks, current, telemetry }: AcceptParts) {
  /** The peer is alive, the connection the most recently used, the frame counted; returns the time. */
  const frameIn = (conn: Connection): number => {
    const now = Date.now()
    keepalive.heard(conn, now)
    registry.touch(conn, now)
    stats.received(conn.counters)
    return now
  }
  return {
    message (this: Tagged<WebSocket>, data: Buffer, isBinary: boolean): void {
      const conn = this[kConnection]
      if (conn === undefined) return
      const now = frameIn(conn)
      stats.messageReceived(conn.counters, data.length)
      if (messageChannel.hasSubscribers) telemetry.message(conn, 'in', isBinary, data.length)
      if (hooks.events('websocket:message').length === 0) return
      current.begin(now, conn)
      try {
        dispatcher.dispatch(conn, 'websocket:message', new MessageEvent(conn, data, isBinary) as unknown as WsMessage, data.length + MESSAGE_OVERHEAD, now)
      } finally {
        current.end()
      }
    },

    /** Ping or Pong received (ws answers Pings itself, which is a frame sent). */
    control (this: Tagged<WebSocket>): void {
      const conn = this[kConnection]
      if (conn !== undefined) frameIn(conn)
    }
  }
}

/** How a connection ends. */
function endListeners ({ registry, stats, keepalive, dispatcher, hooks, log, telemetry }: AcceptParts) {
  return {
    frameError (this: Tagged<NodeJS.EventEmitter>, err: Error & { code?: string }): void {
      const conn = this[kConnection]
      if (conn === undefined || conn.socket === null) return
      const code = FRAME_ERROR_CLOSE_CODES[err.code ?? ''] ?? CLOSE_PROTOCOL_ERROR
      log.info({ id: conn.id, remoteAddress: conn.remoteAddress, code, err: err.message, wsCode: err.code }, 'fastify-sip-ws: bad frame, closing')
      conn.close('error', code, CLOSE_REASONS[code] ?? '')
    },

    /** The socket failed: the error is why it closes, unless a close was under way. */
    error (this: Tagged<WebSocket>, err: Error): void {
      const conn = this[kConnection]
      conn?.failed()
      log.debug({ id: conn?.id, err }, 'fastify-sip-ws: socket error')
    },

    close (this: Tagged<WebSocket>, code: number, reason: Buffer): void {
      const conn = this[kConnection]
      const event = conn?.finish(code, reason) ?? null
      if (conn === undefined || event === null) return
      registry.remove(conn)
      keepalive.forget(conn)
      stats.closed(conn.counters, event.by)
      telemetry.closed(conn, event)
      // Queued behind the connection's last message hook, if one still runs.
      if (hooks.has('websocket:closed')) dispatcher.dispatch(conn, 'websocket:closed', event, 0)
    },

    /** The peer's Close, whatever its code. */
    conclude (this: Tagged<NodeJS.EventEmitter>, code: number): void {
      this[kConnection]?.peerClosing(code)
    }
  }
}
