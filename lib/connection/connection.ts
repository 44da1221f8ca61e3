import { WebSocket } from 'ws'
import { CLOSE_NORMAL, CLOSE_REASONS } from '../constants'
import { Link } from '../ordered-list'
import type { ClosedBy, ConnectionAddress, ConnectionInfo, ConnectionState, WsClosedEvent } from '../types'
import type { HookQueue } from './hook-queue'
import type { ProtocolCounters } from './stats'

const { OPEN } = WebSocket

/**
 * One accepted WebSocket, and the only writer of its life: OPEN → CLOSING → CLOSED, and who started the
 * close. Every other part asks it (`state`, `writable`) and moves it through its named transitions.
 *
 * Kept as a class with fixed fields so V8 gives every entry the same shape: the registry may hold hundreds
 * of thousands of them. The fields below the address are each written by one part only: `lastUsed` and
 * `usedLink` by the registry, `keepaliveDue`, `pingSentAt` and `keepaliveLink` by keepalive, `queue` by the
 * hook dispatcher.
 */
export class Connection {
  readonly id: number
  readonly remoteAddress: string
  readonly remotePort: number
  readonly socketAddress: string
  readonly socketPort: number
  readonly localAddress: string
  readonly localPort: number
  readonly transport: 'ws' | 'wss'
  readonly subProtocol: string
  readonly createdAt: number
  /** Null only for synthetic entries (scale tests). */
  readonly socket: WebSocket | null
  /** This connection's sub-protocol statistics, looked up once here rather than per frame. */
  readonly counters: ProtocolCounters
  /** Milliseconds (Date.now()) of the last frame received or sent. */
  lastUsed: number
  /**
   * When keepalive must look at this connection next: a keepalive timeout after the peer last sent a frame,
   * or after the last probe. Only what the peer sends moves it: our own sends prove nothing about the peer.
   */
  keepaliveDue: number
  /** When the keepalive Ping still unanswered was sent; 0 when none is. */
  pingSentAt = 0
  /** Place in the last-used order (sends and receives), which `wsDump` lists. */
  readonly usedLink: Link<Connection>
  /** Place in the keepalive order (what the peer sent, and probes). */
  readonly keepaliveLink: Link<Connection>
  /** Hook events waiting behind an async hook; null until a hook of this connection first returns a promise. */
  queue: HookQueue | null = null
  private life: ConnectionState = 'OPEN'
  private by: ClosedBy | null = null
  private sentCode = 0
  private sentReason = ''

  constructor (id: number, address: ConnectionAddress, subProtocol: string, socket: WebSocket | null, counters: ProtocolCounters, now: number) {
    this.id = id
    this.remoteAddress = address.remoteAddress
    this.remotePort = address.remotePort
    this.socketAddress = address.socketAddress ?? address.remoteAddress
    this.socketPort = address.socketPort ?? address.remotePort
    this.localAddress = address.localAddress
    this.localPort = address.localPort
    this.transport = address.transport
    this.subProtocol = subProtocol
    this.socket = socket
    this.counters = counters
    this.createdAt = now
    this.lastUsed = now
    this.keepaliveDue = now
    this.usedLink = new Link(this)
    this.keepaliveLink = new Link(this)
  }

  get state (): ConnectionState {
    return this.life
  }

  get isOpen (): boolean {
    return this.life === 'OPEN'
  }

  /** The socket while the connection is open and a frame may still be sent on it, else null. */
  get writableSocket (): WebSocket | null {
    // ws's readyState also leaves OPEN once its socket ended, before its 'close' event reaches us.
    return this.life === 'OPEN' && this.socket !== null && this.socket.readyState === OPEN ? this.socket : null
  }

  /** We start the close handshake (RFC 6455 §7.1.2); false when it was started already. */
  close (by: ClosedBy, code: number, reason: string): boolean {
    if (this.life !== 'OPEN') return false
    this.life = 'CLOSING'
    this.by = by
    this.sentCode = code
    this.sentReason = reason
    this.socket?.close(code, reason)
    return true
  }

  /**
   * The peer's Close, whatever its code: nothing more may be sent (RFC 6455 §5.5.1). ws would echo the
   * peer's code; Kamailio (and SPEC §2/§3) answer a normal or empty Close with 1000 "Normal closure".
   */
  peerClosing (code: number): void {
    if (this.life !== 'OPEN' || this.socket === null) return
    this.life = 'CLOSING'
    if (code === CLOSE_NORMAL || code === 1005) this.socket.close(CLOSE_NORMAL, CLOSE_REASONS[CLOSE_NORMAL])
  }

  /** The socket failed: unless a close was started already, the error is why it closes. */
  failed (): void {
    if (this.by === null) this.by = 'error'
  }

  /**
   * The TCP connection is gone: the closed event, or null when it was reported already. Its code and reason
   * are what the closing side sent: ours when we closed, the peer's (`code`, `reason`) when it did.
   */
  finish (code: number, reason: Buffer): WsClosedEvent | null {
    if (this.life === 'CLOSED') return null
    this.life = 'CLOSED'
    const by = this.by ?? 'remote'
    // A socket error with no close of ours under way sent nothing: what ws saw (1006) is the code.
    const ours = by !== 'remote' && this.sentCode !== 0
    return {
      id: this.id,
      remoteAddress: this.remoteAddress,
      remotePort: this.remotePort,
      socketAddress: this.socketAddress,
      socketPort: this.socketPort,
      subProtocol: this.subProtocol,
      code: ours ? this.sentCode : code,
      reason: ours ? this.sentReason : reason.toString(),
      by
    }
  }

  /** What `wsDump()` and `wsConnection()` give for it. */
  describe (now: number): ConnectionInfo {
    return {
      id: this.id,
      remoteAddress: this.remoteAddress,
      remotePort: this.remotePort,
      socketAddress: this.socketAddress,
      socketPort: this.socketPort,
      localAddress: this.localAddress,
      localPort: this.localPort,
      transport: this.transport,
      state: this.life,
      subProtocol: this.subProtocol,
      createdAt: this.createdAt,
      lastUsed: this.lastUsed,
      lastUsedAgo: Math.max(0, Math.floor((now - this.lastUsed) / 1000))
    }
  }
}
