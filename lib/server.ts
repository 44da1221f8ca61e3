import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import { WebSocket, WebSocketServer } from 'ws'
import { CLOSE_GOING_AWAY, CLOSE_NORMAL, CLOSE_POLICY, CLOSE_PROTOCOL_ERROR, CLOSE_REASONS, FRAME_ERROR_CLOSE_CODES, RETRY_AFTER_SECONDS } from './constants'
import { spreadCloses } from './drain'
import { InvalidCloseError } from './errors'
import { checkRequest, chooseProtocol, corsHeader, parseProtocols, type Refusal } from './handshake'
import { HookDispatcher, MESSAGE_OVERHEAD } from './hook-queue'
import type { Hooks, WsMessage } from './hooks'
import { closeWhenBothEnded, isInjected } from './injected'
import { frameParser, releaseResponse } from './internals'
import { Keepalive } from './keepalive'
import type { Settings } from './options'
import { checkConnectionId, payloadError, type WsData } from './payload'
import { clientAddress, peerAddress } from './peer'
import { Connection, Registry, describeConnection, type ClosedBy, type ConnectionAddress, type ConnectionInfo, type DumpResult } from './registry'
import { Stats, type StatsSnapshot } from './stats'
import { upgradeHead } from './upgrade'

const kConnection = Symbol('fastify-sip-ws.connection')
const kProtocol = Symbol('fastify-sip-ws.protocol')
const { OPEN } = WebSocket

type Tagged<T> = T & { [kConnection]?: Connection }
type TaggedRequest = IncomingMessage & { [kProtocol]?: string }

/** RFC 6455 §7.4: the codes an endpoint may put in a Close frame it sends. */
function isSendableCloseCode (code: number): boolean {
  return Number.isInteger(code) && ((code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999))
}

/** Operations on connections of other nodes (cluster mode): true when on their way to a live owner. */
export interface RemoteConnections {
  send: (id: number, data: WsData) => boolean
  close: (id: number, code: number, reason: string) => boolean
  ping: (id: number) => boolean
  pong: (id: number) => boolean
}

/** Throws the typed error for a Close an endpoint may not send (RFC 6455 §7.4, §5.5). */
export function checkClose (code: number, reason: string): void {
  if (!isSendableCloseCode(code)) throw new InvalidCloseError('status', `${String(code)} is not a close code an endpoint may send (1000-1003, 1007-1014, 3000-4999)`)
  if (typeof reason !== 'string' || Buffer.byteLength(reason) > 123) throw new InvalidCloseError('reason', 'must be a string of at most 123 bytes')
}


/**
 * The WebSocket edge: accepts upgrades, owns every connection, and carries out the admin operations.
 * Listeners are created once here and shared by all sockets (they find their connection through a symbol
 * on the socket), so a connection costs no closures of its own.
 */
export class WsServer {
  readonly registry = new Registry()
  readonly stats: Stats
  readonly keepalive: Keepalive
  private readonly wss: WebSocketServer
  private readonly pingData: Buffer
  readonly dispatcher: HookDispatcher
  /** Set in cluster mode: ids this process does not hold go there. */
  remote: RemoteConnections | null = null
  private enabled = true
  /** Set by `drain()` or `shutdown()`: handshakes get 503 with Retry-After. */
  private leaving: 'draining' | 'shutdown' | null = null
  private stopDrain: (() => void) | null = null
  private draining: Promise<void> | null = null
  private emptyWaiters: Array<() => void> = []
  /**
   * Date.now() of the message whose hooks are running synchronously, 0 outside them: a reply a sync hook
   * sends (the usual case) reuses it instead of reading the clock a second time for the same message.
   */
  private messageNow = 0

  constructor (readonly settings: Settings, private readonly hooks: Hooks, readonly log: FastifyBaseLogger) {
    this.stats = new Stats(settings.enabledProtocols)
    this.pingData = Buffer.from(settings.pingApplicationData)
    this.wss = new WebSocketServer({
      noServer: true,
      // The registry tracks connections; ws's own Set would only duplicate it.
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: settings.maxPayload,
      handleProtocols: (_offered, req: TaggedRequest) => req[kProtocol] ?? false,
      closeTimeout: settings.closeTimeout
    } as ConstructorParameters<typeof WebSocketServer>[0])
    if (settings.corsMode !== 0) {
      this.wss.on('headers', (headers: string[], req: IncomingMessage) => {
        const header = corsHeader(settings.corsMode, req.headers.origin)
        if (header !== null) headers.push(header)
      })
    }
    this.keepalive = new Keepalive({
      mechanism: settings.keepaliveMechanism,
      timeoutMs: settings.keepaliveTimeout,
      intervalMs: settings.keepaliveInterval,
      closeDead: settings.keepaliveCloseDead,
      verbose: settings.verboseList
    }, {
      probe: (conn, now) => { this.probe(conn, now) },
      expire: (conn) => { this.close(conn, 'keepalive', CLOSE_GOING_AWAY, 'Keepalive timeout') }
    }, log)
    this.dispatcher = new HookDispatcher(hooks, { hookTimeout: settings.hookTimeout, queueLimit: settings.hookQueueLimit }, {
      pause: (conn) => {
        log.debug({ id: conn.id, waiting: conn.queue?.waiting, bytes: conn.queue?.cost }, 'fastify-sip-ws: hooks behind; pausing reads')
        conn.socket?.pause()
      },
      resume: (conn) => {
        log.debug({ id: conn.id, waiting: conn.queue?.waiting }, 'fastify-sip-ws: hooks caught up; resuming reads')
        conn.socket?.resume()
      }
    }, log)
    this.keepalive.start()
  }

  // ---- handshake -------------------------------------------------------------------------------------

  /**
   * The handshake step after the `xhttp:request` hooks let a request through: Kamailio's
   * `ws_handle_handshake()`. Either refuses with an HTTP reply or takes the socket over.
   */
  upgrade (request: FastifyRequest, reply: FastifyReply): void {
    const raw = request.raw as TaggedRequest
    // The response's socket: an injected request (injectWS) has one there, and none on the request.
    const socket = (reply.raw.socket ?? raw.socket) as Socket
    const peer = peerAddress(request, socket)
    const refusal = this.handshakeRefusal(request, peer.remoteAddress)
    if (refusal !== null) {
      this.refuse(request, reply, refusal)
      return
    }
    const protocol = raw[kProtocol] as string
    reply.hijack()
    this.wss.handleUpgrade(raw, socket, upgradeHead(raw), (ws) => {
      // @fastify/websocket assigned a ServerResponse to the socket to route the request; nothing writes it
      // now, yet it would keep the request and reply alive: about half of what an idle connection costs.
      releaseResponse(reply.raw, socket)
      if (isInjected(raw)) closeWhenBothEnded(socket)
      this.accept(ws, request, protocol, peer)
    })
  }

  /**
   * Answers an upgrade request with an HTTP refusal; the socket is closed after it. A 500 is our own (or a
   * hook's) mistake: the log says what it was, the client only that it was ours.
   */
  refuse (request: FastifyRequest, reply: FastifyReply, refusal: Refusal): void {
    if (reply.sent) return
    this.stats.total.failed_handshakes++
    const fields = { status: refusal.status, reason: refusal.message, remoteAddress: clientAddress(request) }
    const internal = refusal.status === 500
    if (internal) request.log.error(fields, 'fastify-sip-ws: handshake failed: %s', refusal.message)
    else request.log.info(fields, 'fastify-sip-ws: handshake refused')
    void reply.code(refusal.status).headers({ ...refusal.headers, Connection: 'close' }).type('text/plain; charset=utf-8')
      .send(internal ? 'Internal Server Error' : refusal.message)
  }

  /** The 503 a handshake gets while this node drains or shuts down, or null while it serves. */
  leavingRefusal (): Refusal | null {
    if (this.leaving === null) return null
    return {
      status: 503,
      headers: { 'Retry-After': String(RETRY_AFTER_SECONDS) },
      message: this.leaving === 'draining' ? 'WebSocket service draining: connect to another node' : 'WebSocket service shutting down'
    }
  }

  /**
   * The checks of Kamailio's `ws_handle_handshake()`, plus ours: returns the refusal, or null with the chosen
   * sub-protocol stored on the request. A hook's mistake (a `wsSubProtocol` that is not a string, or not one
   * the client offered) is the server's fault: a 500 whose log line names it.
   */
  private handshakeRefusal (request: FastifyRequest, remoteAddress: string): Refusal | null {
    const raw = request.raw as TaggedRequest
    const leaving = this.leavingRefusal()
    if (leaving !== null) return leaving
    if (!this.enabled) return { status: 503, message: 'WebSocket service disabled' }
    const refusal = checkRequest(raw)
    if (refusal !== null) return refusal
    const offered = parseProtocols(raw.headers['sec-websocket-protocol'])
    if (offered === null) return { status: 400, message: 'Invalid Sec-WebSocket-Protocol header: expected a comma-separated list of tokens' }
    const chosen: unknown = request.wsSubProtocol
    if (chosen !== null && chosen !== undefined && typeof chosen !== 'string') {
      return { status: 500, message: `An xhttp:request hook set request.wsSubProtocol to a ${typeof chosen}; expected the name of an offered sub-protocol` }
    }
    const choice = chooseProtocol(offered, this.settings.enabledProtocols, chosen ?? undefined)
    if (!('protocol' in choice)) return choice
    raw[kProtocol] = choice.protocol
    return this.checkLimits(remoteAddress)
  }

  private checkLimits (remoteAddress: string): Refusal | null {
    const { maxConnections, maxConnectionsPerIp } = this.settings
    if (maxConnections > 0 && this.registry.size >= maxConnections) {
      return { status: 503, headers: { 'Retry-After': String(RETRY_AFTER_SECONDS) }, message: `Connection limit reached (${maxConnections})` }
    }
    if (maxConnectionsPerIp > 0 && this.registry.countFrom(remoteAddress) >= maxConnectionsPerIp) {
      return { status: 503, headers: { 'Retry-After': String(RETRY_AFTER_SECONDS) }, message: `Connection limit per address reached (${maxConnectionsPerIp})` }
    }
    return null
  }

  private accept (ws: WebSocket, request: FastifyRequest, protocol: string, peer: ConnectionAddress): void {
    const now = Date.now()
    const conn = new Connection(this.registry.nextId(), peer, protocol.toLowerCase(), ws, now)
    conn.counters = this.stats.forProtocol(conn.subProtocol)
    this.registry.add(conn)
    this.keepalive.heard(conn, now)
    this.stats.opened(conn.counters)
    const tagged = ws as Tagged<WebSocket>
    tagged[kConnection] = conn
    ws.on('message', this.onMessage)
    ws.on('ping', this.onControl)
    ws.on('pong', this.onControl)
    ws.on('error', this.onError)
    ws.on('close', this.onClose)
    this.takeOverCloseReplies(ws, conn)
    this.log.debug({ id: conn.id, remoteAddress: conn.remoteAddress, remotePort: conn.remotePort, subProtocol: conn.subProtocol }, 'fastify-sip-ws: connection open')
    if (this.hooks.has('websocket:open')) {
      this.dispatcher.dispatch(conn, 'websocket:open', {
        id: conn.id,
        subProtocol: conn.subProtocol,
        remoteAddress: conn.remoteAddress,
        remotePort: conn.remotePort,
        socketAddress: conn.socketAddress,
        socketPort: conn.socketPort,
        localAddress: conn.localAddress,
        localPort: conn.localPort,
        request
      }, 0, now)
    }
  }

  /**
   * ws answers a peer's Close by echoing its code, and a protocol error with a bare code. Kamailio (and
   * SPEC §2/§3) answer 1000 "Normal closure" to a normal or empty Close, and put the reason text in error
   * Closes. Listeners put in front of ws's own on its frame parser send our Close first; ws then finds the
   * socket already closing and sends nothing more.
   */
  private takeOverCloseReplies (ws: WebSocket, conn: Connection): void {
    const receiver = frameParser(ws)
    const tagged = receiver as Tagged<NodeJS.EventEmitter>
    tagged[kConnection] = conn
    receiver.prependListener('conclude', onConclude)
    receiver.prependListener('error', this.onFrameError)
  }

  // ---- per-socket listeners (this = the WebSocket or its receiver) -------------------------------------

  private readonly onMessage = ((server: WsServer) => function (this: Tagged<WebSocket>, data: Buffer, isBinary: boolean): void {
    const conn = this[kConnection]
    if (conn === undefined) return
    const now = Date.now()
    server.keepalive.heard(conn, now)
    server.registry.touch(conn, now)
    server.stats.received(conn.counters!)
    if (!server.hooks.has('websocket:message')) return
    server.messageNow = now
    // One object shape for text and binary (the union is for the hooks' types), so this site stays monomorphic.
    try {
      server.dispatcher.dispatch(conn, 'websocket:message', {
        id: conn.id,
        data: isBinary ? data : data.toString(),
        binary: isBinary,
        subProtocol: conn.subProtocol,
        remoteAddress: conn.remoteAddress,
        remotePort: conn.remotePort
      } as WsMessage, data.length + MESSAGE_OVERHEAD, now)
    } finally {
      server.messageNow = 0
    }
  })(this)

  /** Ping or Pong received (ws answers Pings itself, which is a frame sent). */
  private readonly onControl = ((server: WsServer) => function (this: Tagged<WebSocket>): void {
    const conn = this[kConnection]
    if (conn === undefined) return
    const now = Date.now()
    server.keepalive.heard(conn, now)
    server.registry.touch(conn, now)
    server.stats.received(conn.counters!)
  })(this)

  private readonly onFrameError = ((server: WsServer) => function (this: Tagged<NodeJS.EventEmitter>, err: Error & { code?: string }): void {
    const conn = this[kConnection]
    if (conn === undefined || conn.socket === null) return
    const code = FRAME_ERROR_CLOSE_CODES[err.code ?? ''] ?? CLOSE_PROTOCOL_ERROR
    server.log.info({ id: conn.id, remoteAddress: conn.remoteAddress, code, err: err.message, wsCode: err.code }, 'fastify-sip-ws: bad frame, closing')
    server.close(conn, 'error', code, CLOSE_REASONS[code] ?? '')
  })(this)

  private readonly onError = ((server: WsServer) => function (this: Tagged<WebSocket>, err: Error): void {
    const conn = this[kConnection]
    if (conn !== undefined && conn.closedBy === null) conn.closedBy = 'error'
    server.log.debug({ id: conn?.id, err }, 'fastify-sip-ws: socket error')
  })(this)

  private readonly onClose = ((server: WsServer) => function (this: Tagged<WebSocket>, code: number, reason: Buffer): void {
    const conn = this[kConnection]
    if (conn !== undefined) server.closed(conn, code, reason)
  })(this)

  // ---- operations ------------------------------------------------------------------------------------

  setEnabled (enabled: boolean): void {
    this.enabled = enabled
    if (enabled && this.leaving === 'draining') {
      this.leaving = null
      this.stopDrain?.()
    }
    this.log.warn(enabled ? 'fastify-sip-ws: enabled' : 'fastify-sip-ws: disabled; new WebSocket handshakes get 503')
  }

  get (id: number): Connection | undefined {
    return this.registry.get(id)
  }

  info (id: number): ConnectionInfo | undefined {
    const conn = this.registry.get(id)
    return conn === undefined ? undefined : describeConnection(conn, Date.now())
  }

  /** The connection, when it is open and a frame may still be sent on it. */
  private writable (conn: Connection): conn is Connection & { readonly socket: WebSocket } {
    // ws's readyState also leaves OPEN once a Close was sent or received, whoever started it.
    return conn.state === 'OPEN' && conn.socket !== null && conn.socket.readyState === OPEN
  }

  send (id: number, data: WsData): boolean {
    const bad = payloadError(data)
    if (bad !== null) throw bad
    const conn = this.registry.get(id)
    if (conn === undefined) return this.remote !== null && this.remote.send(id, data)
    if (!this.writable(conn)) return false
    const limit = this.settings.maxBufferedAmount
    if (limit > 0 && conn.socket.bufferedAmount > limit) {
      // A peer that does not read would make us buffer without end; drop it instead.
      this.log.warn({ id, bufferedAmount: conn.socket.bufferedAmount, limit }, 'fastify-sip-ws: send buffer limit exceeded, closing')
      this.close(conn, 'error', CLOSE_POLICY, 'Send buffer limit exceeded')
      return false
    }
    // ws frames a string as text and anything else as binary, as we want: options would only cost an
    // object spread inside ws's send() on every message.
    conn.socket.send(data)
    this.registry.touch(conn, this.messageNow !== 0 ? this.messageNow : Date.now())
    this.stats.transmitted(conn.counters!)
    return true
  }

  ping (id: number): boolean {
    const conn = this.registry.get(id)
    if (conn === undefined) return this.remote !== null && this.remote.ping(id)
    return this.control(conn, true)
  }

  pong (id: number): boolean {
    const conn = this.registry.get(id)
    if (conn === undefined) return this.remote !== null && this.remote.pong(id)
    return this.control(conn, false)
  }

  private control (conn: Connection, ping: boolean): boolean {
    if (!this.writable(conn)) return false
    if (ping) conn.socket.ping(this.pingData)
    else conn.socket.pong(this.pingData)
    this.registry.touch(conn, Date.now())
    this.stats.transmitted(conn.counters!)
    return true
  }

  private probe (conn: Connection, now: number): void {
    if (conn.socket === null || conn.socket.readyState !== OPEN) return
    if (this.settings.keepaliveMechanism === 1) conn.socket.ping(this.pingData)
    else conn.socket.pong(this.pingData)
    this.registry.touch(conn, now)
    this.stats.transmitted(conn.counters!)
  }

  /**
   * Public close: validates its arguments, since they come from users and RPC callers. An id is required,
   * so that a call written for the old `wsClose()` (close everything) or a typo's undefined fails loudly
   * instead of quietly closing nothing.
   */
  closeById (id: number, code: number = CLOSE_NORMAL, reason: string = CLOSE_REASONS[CLOSE_NORMAL]): boolean {
    checkConnectionId(id, 'wsClose')
    checkClose(code, reason)
    const conn = this.registry.get(id)
    if (conn === undefined) return this.remote !== null && this.remote.close(id, code, reason)
    if (conn.state !== 'OPEN') return false
    this.close(conn, 'local', code, reason)
    return true
  }

  /** Starts the close handshake of every open connection; returns how many. */
  closeAll (code: number = CLOSE_NORMAL, reason: string = CLOSE_REASONS[CLOSE_NORMAL]): number {
    checkClose(code, reason)
    let started = 0
    for (const conn of [...this.registry.values()]) {
      if (conn.state !== 'OPEN') continue
      this.close(conn, 'local', code, reason)
      started++
    }
    return started
  }

  close (conn: Connection, by: ClosedBy, code: number, reason: string): void {
    if (conn.state !== 'OPEN') return
    conn.state = 'CLOSING'
    conn.closedBy = by
    conn.closeCode = code
    conn.closeReason = reason
    conn.socket?.close(code, reason)
  }

  private closed (conn: Connection, code: number, reason: Buffer): void {
    if (conn.state === 'CLOSED') return
    conn.state = 'CLOSED'
    this.registry.remove(conn)
    this.keepalive.forget(conn)
    const by = conn.closedBy ?? 'remote'
    this.stats.closed(conn.counters!, by)
    const event = {
      id: conn.id,
      remoteAddress: conn.remoteAddress,
      remotePort: conn.remotePort,
      socketAddress: conn.socketAddress,
      socketPort: conn.socketPort,
      subProtocol: conn.subProtocol,
      // What the closing side sent: our own code when we closed, the peer's when it did.
      code: by === 'remote' ? code : conn.closeCode,
      reason: by === 'remote' ? reason.toString() : conn.closeReason,
      by
    }
    this.log.debug(event, 'fastify-sip-ws: connection closed')
    // Queued behind the connection's last message hook, if one still runs.
    if (this.hooks.has('websocket:closed')) this.dispatcher.dispatch(conn, 'websocket:closed', event, 0)
    if (this.registry.size === 0 && this.emptyWaiters.length > 0) {
      const waiters = this.emptyWaiters
      this.emptyWaiters = []
      for (const wake of waiters) wake()
    }
  }

  private async whenEmpty (): Promise<void> {
    if (this.registry.size === 0) return
    await new Promise<void>((resolve) => { this.emptyWaiters.push(resolve) })
  }

  dump (order?: string): DumpResult {
    const result = this.registry.dump(order)
    if (this.settings.verboseList) this.log.debug({ order: order ?? 'id_hash', listed: result.connections.length, wscounter: result.wscounter }, 'fastify-sip-ws: dump')
    return result
  }

  statistics (): StatsSnapshot {
    return this.stats.snapshot()
  }

  /**
   * Takes this node out of service for a rolling restart: new handshakes get 503 with Retry-After, and open
   * connections are closed with 1001 "Going Away", spread evenly over `within` ms so their clients do not
   * all reconnect to the other nodes at once. Resolves when none is left and their closed hooks have run.
   * `setEnabled(true)` ends a drain early.
   */
  async drain (within: number): Promise<void> {
    if (this.draining !== null) return await this.draining
    if (this.leaving === null) this.leaving = 'draining'
    const open = [...this.registry.values()].filter((conn) => conn.state === 'OPEN')
    this.log.info({ connections: open.length, within }, 'fastify-sip-ws: draining; new handshakes get 503')
    this.draining = (async () => {
      await new Promise<void>((resolve) => {
        this.stopDrain = spreadCloses(open, within, (conn) => {
          this.close(conn, 'local', CLOSE_GOING_AWAY, CLOSE_REASONS[CLOSE_GOING_AWAY])
        }, resolve)
      })
      this.stopDrain = null
      if (this.leaving === 'draining') await this.settle()
    })()
    try {
      await this.draining
    } finally {
      this.draining = null
    }
  }

  /**
   * Server shutdown: every open connection gets Close 1001 "Going Away" and its closed event. Resolves when
   * all are gone and every hook has settled: ws's close timeout bounds the first wait (a last timer
   * terminates stragglers), `hookTimeout` the second.
   */
  beginShutdown (): Refusal {
    this.leaving = 'shutdown'
    return this.leavingRefusal() as Refusal
  }

  async shutdown (): Promise<void> {
    this.beginShutdown()
    this.keepalive.stop()
    this.stopDrain?.()
    this.closeAll(CLOSE_GOING_AWAY, CLOSE_REASONS[CLOSE_GOING_AWAY])
    await this.settle()
    this.wss.close()
  }

  /** Waits until no connection is left (terminating those past closeTimeout) and hooks have settled. */
  private async settle (): Promise<void> {
    const stragglers = setTimeout(() => {
      for (const conn of this.registry.values()) conn.socket?.terminate()
    }, this.settings.closeTimeout + 500)
    await this.whenEmpty()
    clearTimeout(stragglers)
    if (!await this.dispatcher.whenIdle(this.settings.hookTimeout)) {
      this.log.warn({ connections: this.dispatcher.busy, hookTimeout: this.settings.hookTimeout }, 'fastify-sip-ws: hooks still running after hookTimeout; not waiting for them')
    }
  }
}

/** The peer's Close, whatever its code: nothing more may be sent (RFC 6455 §5.5.1). */
function onConclude (this: Tagged<NodeJS.EventEmitter>, code: number): void {
  const conn = this[kConnection]
  if (conn === undefined || conn.socket === null || conn.state !== 'OPEN') return
  conn.state = 'CLOSING'
  if (code === CLOSE_NORMAL || code === 1005) conn.socket.close(CLOSE_NORMAL, CLOSE_REASONS[CLOSE_NORMAL])
}
