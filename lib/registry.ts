import type { WebSocket } from 'ws'
import { BadDumpOrderError } from './errors'
import type { HookQueue } from './hook-queue'
import { Link, OrderedList } from './ordered-list'
import type { ProtocolCounters } from './stats'

export type ConnectionState = 'OPEN' | 'CLOSING' | 'CLOSED'
export type ClosedBy = 'local' | 'remote' | 'keepalive' | 'error'
export type DumpOrder = 'id_hash' | 'used_desc' | 'used_asc'

export const DUMP_ORDERS: readonly DumpOrder[] = ['id_hash', 'used_desc', 'used_asc']
export const DUMP_LIMIT = 50

export interface ConnectionAddress {
  /** The client: behind a proxy Fastify trusts (`trustProxy`), the one X-Forwarded-For names. */
  remoteAddress: string
  /** 0 when the client's address came from X-Forwarded-For, which carries no port. */
  remotePort: number
  /** The TCP peer of the socket (the proxy, behind one); the client's own address and port otherwise. */
  socketAddress?: string
  socketPort?: number
  localAddress: string
  localPort: number
  /** `wss` when the connection came over TLS, or a proxy Fastify trusts says so (X-Forwarded-Proto). */
  transport: 'ws' | 'wss'
}

/**
 * One accepted WebSocket. Kept as a class with fixed fields so V8 gives every entry the same shape:
 * the registry may hold hundreds of thousands of them.
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
  /** Milliseconds (Date.now()) of the last frame received or sent. */
  lastUsed: number
  /**
   * Where keepalive's queue holds this connection: a keepalive timeout after it last took its place there
   * (on a frame from the peer, or a probe). Only what the peer sends moves it: our own sends prove nothing
   * about the peer. The real due time is a timeout after `heardAt` when that is later (keepalive.ts).
   */
  keepaliveDue: number
  /** When the peer last sent a frame (keepalive's own clock: its queue may hold the entry a little early). */
  heardAt: number
  /** When the keepalive Ping still unanswered was sent; 0 when none is. */
  pingSentAt = 0
  state: ConnectionState = 'OPEN'
  /** Set by whoever starts the close, so the closed event can say who it was. */
  closedBy: ClosedBy | null = null
  closeCode = 0
  closeReason = ''
  /** Null only for synthetic entries (scale tests). */
  readonly socket: WebSocket | null
  /** This connection's sub-protocol statistics, looked up once here rather than per frame. */
  counters: ProtocolCounters | null = null
  /** Place in the last-used order (sends and receives), which `wsDump` lists. */
  readonly usedLink: Link<Connection>
  /** Place in the keepalive order (what the peer sent, and probes). */
  readonly keepaliveLink: Link<Connection>
  /** Hook events waiting behind an async hook; null until a hook of this connection first returns a promise. */
  queue: HookQueue | null = null

  constructor (id: number, address: ConnectionAddress, subProtocol: string, socket: WebSocket | null, now: number) {
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
    this.createdAt = now
    this.lastUsed = now
    this.keepaliveDue = now
    this.heardAt = now
    this.usedLink = new Link(this)
    this.keepaliveLink = new Link(this)
  }
}

/** What `wsDump()` gives for one connection. */
export interface ConnectionInfo extends Required<ConnectionAddress> {
  id: number
  state: ConnectionState
  subProtocol: string
  createdAt: number
  lastUsed: number
  /** Whole seconds since the last frame, as Kamailio prints it. */
  lastUsedAgo: number
}

export interface DumpResult {
  connections: ConnectionInfo[]
  /** Connections open now (Kamailio's `wscounter`). */
  wscounter: number
  /** True when more connections are open than were listed. */
  truncated: boolean
}

/**
 * Connections by id (a Map: O(1) lookup, and its insertion order is id order) and in last-used order (an
 * intrusive list: O(1) to touch, and walking from either end yields the least or most recently used first,
 * so a dump never sorts).
 */
/** Where ids come from when they must be unique beyond this process (cluster mode). */
export interface IdSource {
  nextId: () => number
  released: (id: number) => void
}

export class Registry {
  private readonly byId = new Map<number, Connection>()
  /** Null: ids count up from 1 in this process. */
  ids: IdSource | null = null
  private readonly perIp = new Map<string, number>()
  /** Head: least recently used; tail: most recently used. */
  readonly used = new OrderedList<Connection>()
  private lastId = 0

  get size (): number {
    return this.byId.size
  }

  nextId (): number {
    return this.ids === null ? ++this.lastId : this.ids.nextId()
  }

  get (id: number): Connection | undefined {
    return this.byId.get(id)
  }

  countFrom (address: string): number {
    return this.perIp.get(address) ?? 0
  }

  add (conn: Connection): void {
    this.byId.set(conn.id, conn)
    this.perIp.set(conn.remoteAddress, (this.perIp.get(conn.remoteAddress) ?? 0) + 1)
    this.used.moveToTail(conn.usedLink)
  }

  /** Returns false when the connection was not (or no longer) registered. */
  remove (conn: Connection): boolean {
    if (!this.byId.delete(conn.id)) return false
    const left = (this.perIp.get(conn.remoteAddress) ?? 1) - 1
    if (left === 0) this.perIp.delete(conn.remoteAddress)
    else this.perIp.set(conn.remoteAddress, left)
    this.used.unlink(conn.usedLink)
    this.ids?.released(conn.id)
    return true
  }

  /** Marks a frame in or out: the connection becomes the most recently used. */
  touch (conn: Connection, now: number): void {
    conn.lastUsed = now
    if (conn.state !== 'CLOSED') this.used.moveToTail(conn.usedLink)
  }

  values (): IterableIterator<Connection> {
    return this.byId.values()
  }

  /** At most `limit` connections in the given order; cost O(limit) whatever the size. */
  dump (order: string = 'id_hash', now = Date.now(), limit = DUMP_LIMIT): DumpResult {
    const connections: ConnectionInfo[] = []
    switch (order) {
      case 'id_hash':
        for (const conn of this.byId.values()) {
          if (connections.length === limit) break
          connections.push(describeConnection(conn, now))
        }
        break
      // Kamailio sorts on "last used Ns ago": ascending is the most recently used first (observed on 5.6).
      case 'used_asc':
        for (let link = this.used.tail; link !== null && connections.length < limit; link = link.prev) connections.push(describeConnection(link.owner, now))
        break
      case 'used_desc':
        for (let link = this.used.head; link !== null && connections.length < limit; link = link.next) connections.push(describeConnection(link.owner, now))
        break
      default:
        throw new BadDumpOrderError(order)
    }
    return { connections, wscounter: this.byId.size, truncated: this.byId.size > connections.length }
  }
}

/** Kamailio's `ws.dump` line: `35: ws:127.0.0.1:42304 -> ws:127.0.0.1:8100 (state: OPEN,  last used 0s ago, sub-protocol: sip)`. */
export function dumpLine (info: ConnectionInfo): string {
  const host = (address: string): string => address.includes(':') ? `[${address}]` : address
  return `${info.id}: ${info.transport}:${host(info.remoteAddress)}:${info.remotePort} -> ${info.transport}:${host(info.localAddress)}:${info.localPort} (state: ${info.state},  last used ${info.lastUsedAgo}s ago, sub-protocol: ${info.subProtocol})`
}

export function describeConnection (conn: Connection, now: number): ConnectionInfo {
  return {
    id: conn.id,
    remoteAddress: conn.remoteAddress,
    remotePort: conn.remotePort,
    socketAddress: conn.socketAddress,
    socketPort: conn.socketPort,
    localAddress: conn.localAddress,
    localPort: conn.localPort,
    transport: conn.transport,
    state: conn.state,
    subProtocol: conn.subProtocol,
    createdAt: conn.createdAt,
    lastUsed: conn.lastUsed,
    lastUsedAgo: Math.max(0, Math.floor((now - conn.lastUsed) / 1000))
  }
}
