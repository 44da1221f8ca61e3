import type { FastifyBaseLogger } from 'fastify'
import { WebSocket } from 'ws'
import { checkClose, checkConnectionId, dumpOrder, payloadError } from './arguments'
import type { RemoteConnections } from './cluster/seam'
import { CLOSE_NORMAL, CLOSE_POLICY, CLOSE_REASONS } from './constants'
import type { CurrentMessage } from './connection/current-message'
import type { Connection } from './connection/connection'
import type { Registry } from './connection/registry'
import type { Stats } from './connection/stats'
import { messageChannel } from './observe/channels'
import type { Telemetry } from './observe/telemetry'
import type { Settings } from './options'
import type { ConnectionInfo, DumpResult, StatsSnapshot, WsData } from './types'

/**
 * The operations on connections that users, RPC callers and other nodes call: send, ping, pong, close,
 * dump, statistics. An id this process does not hold goes to `remote`: the other nodes in cluster mode,
 * nobody in a single process.
 */
export class WsServer {
  private readonly pingData: Buffer

  constructor (
    private readonly settings: Settings,
    private readonly registry: Registry,
    private readonly stats: Stats,
    private readonly remote: RemoteConnections,
    private readonly current: CurrentMessage,
    private readonly log: FastifyBaseLogger,
    private readonly telemetry: Telemetry
  ) {
    this.pingData = Buffer.from(settings.pingApplicationData)
  }

  /** Open connections in this process. */
  get size (): number {
    return this.registry.size
  }

  /** Whether this process holds the connection. */
  has (id: number): boolean {
    return this.registry.get(id) !== undefined
  }

  info (id: number): ConnectionInfo | undefined {
    return this.registry.get(id)?.describe(Date.now())
  }

  send (id: number, data: WsData): boolean {
    const bad = payloadError(data)
    if (bad !== null) throw bad
    const conn = this.current.connection(id) ?? this.registry.get(id)
    if (conn === undefined) return this.remote.send(id, data)
    const socket = conn.writableSocket
    if (socket === null) return false
    const limit = this.settings.maxBufferedAmount
    if (limit > 0 && socket.bufferedAmount > limit) {
      // A peer that does not read would make us buffer without end; drop it instead.
      this.log.warn({ id, bufferedAmount: socket.bufferedAmount, limit }, 'fastify-sip-ws: send buffer limit exceeded, closing')
      conn.close('error', CLOSE_POLICY, 'Send buffer limit exceeded')
      return false
    }
    // ws frames a string as text and anything else as binary, as we want: options would only cost an
    // object spread inside ws's send() on every message.
    socket.send(data)
    this.registry.touch(conn, this.current.now())
    this.stats.transmitted(conn.counters)
    this.stats.messageSent(conn.counters, data)
    if (messageChannel.hasSubscribers) this.telemetry.message(conn, 'out', typeof data !== 'string', typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength)
    return true
  }

  ping (id: number): boolean {
    const conn = this.registry.get(id)
    if (conn === undefined) return this.remote.ping(id)
    const socket = conn.writableSocket
    return socket !== null && this.control(conn, socket, true, Date.now())
  }

  pong (id: number): boolean {
    const conn = this.registry.get(id)
    if (conn === undefined) return this.remote.pong(id)
    const socket = conn.writableSocket
    return socket !== null && this.control(conn, socket, false, Date.now())
  }

  /** Keepalive's probe: the frame its mechanism names, on a connection whose socket is still open. */
  probe (conn: Connection, now: number): void {
    if (conn.socket === null || conn.socket.readyState !== WebSocket.OPEN) return
    this.control(conn, conn.socket, this.settings.keepaliveMechanism === 1, now)
  }

  private control (conn: Connection, socket: WebSocket, ping: boolean, now: number): true {
    if (ping) socket.ping(this.pingData)
    else socket.pong(this.pingData)
    this.registry.touch(conn, now)
    this.stats.transmitted(conn.counters)
    return true
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
    if (conn === undefined) return this.remote.close(id, code, reason)
    return conn.close('local', code, reason)
  }

  /** Starts the close handshake of every open connection; returns how many. */
  closeAll (code: number = CLOSE_NORMAL, reason: string = CLOSE_REASONS[CLOSE_NORMAL]): number {
    checkClose(code, reason)
    let started = 0
    for (const conn of this.registry.open()) if (conn.close('local', code, reason)) started++
    return started
  }

  dump (order?: unknown): DumpResult {
    const result = this.registry.dump(dumpOrder(order))
    if (this.settings.verboseList) this.log.debug({ order: order ?? 'id_hash', listed: result.connections.length, wscounter: result.wscounter }, 'fastify-sip-ws: dump')
    return result
  }

  statistics (): StatsSnapshot {
    return this.stats.snapshot()
  }
}
