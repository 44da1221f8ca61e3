import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { WebSocketServer, type WebSocket } from 'ws'
import { CLOSE_GOING_AWAY, CLOSE_NORMAL, CLOSE_POLICY, CLOSE_REASONS } from './constants'
import { InvalidCloseError } from './errors'
import { checkRequest, chooseProtocol, corsHeader, parseProtocols, type Refusal } from './handshake'
import type { Hooks } from './hooks'
import { Keepalive } from './keepalive'
import type { Settings } from './options'
import { Connection, Registry, describeConnection, type ClosedBy, type ConnectionInfo, type DumpResult } from './registry'
import { Stats, type StatsSnapshot } from './stats'

const kConnection = Symbol('fastify-sip-ws.connection')
const kProtocol = Symbol('fastify-sip-ws.protocol')
const TEXT = { binary: false }
const BINARY = { binary: true }
const EMPTY = Buffer.alloc(0)

type Tagged<T> = T & { [kConnection]?: Connection }
type TaggedRequest = IncomingMessage & { [kProtocol]?: string }

/**
 * @fastify/websocket keeps the bytes that followed the upgrade request (`head`) under a private symbol.
 * They are almost always empty, but a client may pipeline its first frame: losing them would lose data.
 */
let headSymbol: symbol | undefined
function upgradeHead (raw: IncomingMessage): Buffer {
  if (headSymbol === undefined) headSymbol = Object.getOwnPropertySymbols(raw).find((s) => s.description === 'ws-head')
  const head = headSymbol === undefined ? undefined : (raw as unknown as Record<symbol, unknown>)[headSymbol]
  return Buffer.isBuffer(head) ? head : EMPTY
}

/**
 * @fastify/websocket pins the ServerResponse it routes with to the socket. Nothing writes it once the
 * socket is a WebSocket, yet it would keep the request, the reply and their headers alive for the life of
 * the connection: about half of what an idle connection costs.
 */
function releaseResponse (res: ServerResponse, socket: Socket): void {
  if ((socket as Socket & { _httpMessage?: unknown })._httpMessage === res) res.detachSocket(socket)
}

/** RFC 6455 §7.4: the codes an endpoint may put in a Close frame it sends. */
function isSendableCloseCode (code: number): boolean {
  return Number.isInteger(code) && ((code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999))
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
  private enabled = true
  private shuttingDown = false
  private drained: (() => void) | null = null

  constructor (readonly settings: Settings, private readonly hooks: Hooks, private readonly log: FastifyBaseLogger) {
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
    this.keepalive = new Keepalive(this.registry, {
      mechanism: settings.keepaliveMechanism,
      timeoutMs: settings.keepaliveTimeout * 1000,
      intervalMs: settings.keepaliveInterval * 1000,
      closeDead: settings.keepaliveCloseDead,
      verbose: settings.verboseList
    }, {
      probe: (conn, now) => { this.probe(conn, now) },
      expire: (conn) => { this.close(conn, 'keepalive', CLOSE_GOING_AWAY, 'Keepalive timeout') }
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
    let refusal: Refusal | null = null
    let protocol = ''
    if (!this.enabled || this.shuttingDown) {
      refusal = { status: 503, message: 'WebSocket service disabled' }
    } else {
      refusal = checkRequest(raw)
      if (refusal === null) {
        const offered = parseProtocols(raw.headers['sec-websocket-protocol'])
        const choice = offered === null
          ? { status: 400, message: 'Invalid Sec-WebSocket-Protocol header: expected a comma-separated list of tokens' }
          : chooseProtocol(offered, this.settings.enabledProtocols, request.wsSubProtocol ?? undefined)
        if ('protocol' in choice) protocol = choice.protocol
        else refusal = choice
      }
      if (refusal === null) refusal = this.checkLimits(raw)
    }
    if (refusal !== null) {
      this.stats.total.failed_handshakes++
      request.log.info({ status: refusal.status, reason: refusal.message, remoteAddress: raw.socket.remoteAddress }, 'fastify-sip-ws: handshake refused')
      void reply.code(refusal.status).headers({ ...refusal.headers, Connection: 'close' }).type('text/plain; charset=utf-8').send(refusal.message)
      return
    }
    raw[kProtocol] = protocol
    reply.hijack()
    this.wss.handleUpgrade(raw, raw.socket, upgradeHead(raw), (ws) => {
      releaseResponse(reply.raw, raw.socket)
      this.accept(ws, request, protocol)
    })
  }

  private checkLimits (raw: IncomingMessage): Refusal | null {
    const { maxConnections, maxConnectionsPerIp } = this.settings
    if (maxConnections > 0 && this.registry.size >= maxConnections) {
      return { status: 503, headers: { 'Retry-After': '5' }, message: `Connection limit reached (${maxConnections})` }
    }
    if (maxConnectionsPerIp > 0 && this.registry.countFrom(raw.socket.remoteAddress ?? '') >= maxConnectionsPerIp) {
      return { status: 503, headers: { 'Retry-After': '5' }, message: `Connection limit per address reached (${maxConnectionsPerIp})` }
    }
    return null
  }

  private accept (ws: WebSocket, request: FastifyRequest, protocol: string): void {
    const socket = request.raw.socket
    const conn = new Connection(this.registry.nextId(), {
      remoteAddress: socket.remoteAddress ?? '',
      remotePort: socket.remotePort ?? 0,
      localAddress: socket.localAddress ?? '',
      localPort: socket.localPort ?? 0,
      transport: (socket as TLSSocket).encrypted === true ? 'wss' : 'ws'
    }, protocol.toLowerCase(), ws, Date.now())
    conn.counters = this.stats.forProtocol(conn.subProtocol)
    this.registry.add(conn)
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
      void this.hooks.emit('websocket:open', {
        id: conn.id,
        subProtocol: conn.subProtocol,
        remoteAddress: conn.remoteAddress,
        remotePort: conn.remotePort,
        localAddress: conn.localAddress,
        localPort: conn.localPort,
        request
      })
    }
  }

  /**
   * ws answers a peer's Close by echoing its code, and a protocol error with a bare code. Kamailio (and
   * SPEC §2/§3) answer 1000 "Normal closure" to a normal or empty Close, and put the reason text in error
   * Closes. Listeners put in front of ws's own on its frame parser send our Close first; ws then finds the
   * socket already closing and sends nothing more.
   */
  private takeOverCloseReplies (ws: WebSocket, conn: Connection): void {
    const receiver = (ws as unknown as { _receiver?: NodeJS.EventEmitter })._receiver
    if (receiver === undefined || typeof receiver.prependListener !== 'function') return
    const tagged = receiver as Tagged<NodeJS.EventEmitter>
    tagged[kConnection] = conn
    receiver.prependListener('conclude', onConclude)
    receiver.prependListener('error', this.onFrameError)
  }

  // ---- per-socket listeners (this = the WebSocket or its receiver) -------------------------------------

  private readonly onMessage = ((server: WsServer) => function (this: Tagged<WebSocket>, data: Buffer, isBinary: boolean): void {
    const conn = this[kConnection]
    if (conn === undefined) return
    conn.pingSentAt = 0
    server.registry.touch(conn, Date.now())
    server.stats.received(conn.counters!)
    if (!server.hooks.has('websocket:message')) return
    void server.hooks.emit('websocket:message', {
      id: conn.id,
      data: isBinary ? data : data.toString(),
      binary: isBinary,
      subProtocol: conn.subProtocol,
      remoteAddress: conn.remoteAddress,
      remotePort: conn.remotePort
    })
  })(this)

  /** Ping or Pong received (ws answers Pings itself, which is a frame sent). */
  private readonly onControl = ((server: WsServer) => function (this: Tagged<WebSocket>): void {
    const conn = this[kConnection]
    if (conn === undefined) return
    conn.pingSentAt = 0
    server.registry.touch(conn, Date.now())
    server.stats.received(conn.counters!)
  })(this)

  private readonly onFrameError = ((server: WsServer) => function (this: Tagged<NodeJS.EventEmitter>, err: Error & { code?: string }): void {
    const conn = this[kConnection]
    if (conn === undefined || conn.socket === null) return
    const code = (err as unknown as Record<symbol, number>)[statusCodeSymbol(err)] ?? 1002
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
    this.log.warn(enabled ? 'fastify-sip-ws: enabled' : 'fastify-sip-ws: disabled; new WebSocket handshakes get 503')
  }

  get (id: number): Connection | undefined {
    return this.registry.get(id)
  }

  info (id: number): ConnectionInfo | undefined {
    const conn = this.registry.get(id)
    return conn === undefined ? undefined : describeConnection(conn, Date.now())
  }

  send (id: number, data: string | Buffer | Uint8Array): boolean {
    const conn = this.registry.get(id)
    if (conn === undefined || conn.state !== 'OPEN' || conn.socket === null) return false
    const limit = this.settings.maxBufferedAmount
    if (limit > 0 && conn.socket.bufferedAmount > limit) {
      // A peer that does not read would make us buffer without end; drop it instead.
      this.log.warn({ id, bufferedAmount: conn.socket.bufferedAmount, limit }, 'fastify-sip-ws: send buffer limit exceeded, closing')
      this.close(conn, 'error', CLOSE_POLICY, 'Send buffer limit exceeded')
      return false
    }
    conn.socket.send(data, typeof data === 'string' ? TEXT : BINARY)
    this.registry.touch(conn, Date.now())
    this.stats.transmitted(conn.counters!)
    return true
  }

  ping (id: number): boolean {
    return this.control(id, true)
  }

  pong (id: number): boolean {
    return this.control(id, false)
  }

  private control (id: number, ping: boolean): boolean {
    const conn = this.registry.get(id)
    if (conn === undefined || conn.state !== 'OPEN' || conn.socket === null) return false
    if (ping) conn.socket.ping(this.pingData)
    else conn.socket.pong(this.pingData)
    this.registry.touch(conn, Date.now())
    this.stats.transmitted(conn.counters!)
    return true
  }

  private probe (conn: Connection, now: number): void {
    if (conn.socket === null) return
    if (this.settings.keepaliveMechanism === 1) {
      conn.socket.ping(this.pingData)
      if (conn.pingSentAt === 0) conn.pingSentAt = now
    } else {
      conn.socket.pong(this.pingData)
    }
    this.registry.touch(conn, now)
    this.stats.transmitted(conn.counters!)
  }

  /** Public close: validates its arguments, since they come from users and RPC callers. */
  closeById (id: number, code: number = CLOSE_NORMAL, reason: string = CLOSE_REASONS[CLOSE_NORMAL]): boolean {
    if (!isSendableCloseCode(code)) throw new InvalidCloseError('status', `${String(code)} is not a close code an endpoint may send (1000-1003, 1007-1014, 3000-4999)`)
    if (typeof reason !== 'string' || Buffer.byteLength(reason) > 123) throw new InvalidCloseError('reason', 'must be a string of at most 123 bytes')
    const conn = this.registry.get(id)
    if (conn === undefined || conn.state !== 'OPEN') return false
    this.close(conn, 'local', code, reason)
    return true
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
    const by = conn.closedBy ?? 'remote'
    this.stats.closed(conn.counters!, by)
    const event = {
      id: conn.id,
      remoteAddress: conn.remoteAddress,
      remotePort: conn.remotePort,
      subProtocol: conn.subProtocol,
      // What the closing side sent: our own code when we closed, the peer's when it did.
      code: by === 'remote' ? code : conn.closeCode,
      reason: by === 'remote' ? reason.toString() : conn.closeReason,
      by
    }
    this.log.debug(event, 'fastify-sip-ws: connection closed')
    void this.hooks.emit('websocket:closed', event)
    if (this.drained !== null && this.registry.size === 0) this.drained()
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
   * Server shutdown: every open connection gets Close 1001 "Going Away" and its closed event. Resolves when
   * all are gone; ws's close timeout bounds the wait, and a last timer terminates stragglers.
   */
  async shutdown (): Promise<void> {
    this.shuttingDown = true
    this.keepalive.stop()
    if (this.registry.size === 0) return
    const done = new Promise<void>((resolve) => { this.drained = resolve })
    for (const conn of [...this.registry.values()]) {
      if (conn.state === 'OPEN') this.close(conn, 'local', CLOSE_GOING_AWAY, CLOSE_REASONS[CLOSE_GOING_AWAY])
    }
    const stragglers = setTimeout(() => {
      for (const conn of this.registry.values()) conn.socket?.terminate()
    }, this.settings.closeTimeout + 500)
    await done
    clearTimeout(stragglers)
    this.wss.close()
  }
}

// ws marks the close code of a frame error under a symbol it does not export; find it once.
let statusSymbol: symbol | undefined
function statusCodeSymbol (err: Error): symbol {
  if (statusSymbol === undefined) statusSymbol = Object.getOwnPropertySymbols(err).find((s) => s.description === 'status-code')
  return statusSymbol ?? Symbol.for('none')
}

function onConclude (this: Tagged<NodeJS.EventEmitter>, code: number): void {
  const conn = this[kConnection]
  if (conn === undefined || conn.socket === null || conn.state !== 'OPEN') return
  if (code === CLOSE_NORMAL || code === 1005) {
    conn.state = 'CLOSING'
    conn.socket.close(CLOSE_NORMAL, CLOSE_REASONS[CLOSE_NORMAL])
  }
}
