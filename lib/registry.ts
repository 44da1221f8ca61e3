import type { WebSocket } from 'ws'
import { BadDumpOrderError } from './errors'
import type { ProtocolCounters } from './stats'

export type ConnectionState = 'OPEN' | 'CLOSING' | 'CLOSED'
export type ClosedBy = 'local' | 'remote' | 'keepalive' | 'error'
export type DumpOrder = 'id_hash' | 'used_desc' | 'used_asc'

export const DUMP_ORDERS: readonly DumpOrder[] = ['id_hash', 'used_desc', 'used_asc']
export const DUMP_LIMIT = 50

export interface ConnectionAddress {
  remoteAddress: string
  remotePort: number
  localAddress: string
  localPort: number
  /** `wss` when the connection came over TLS. */
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
  readonly localAddress: string
  readonly localPort: number
  readonly transport: 'ws' | 'wss'
  readonly subProtocol: string
  readonly createdAt: number
  /** Milliseconds (Date.now()) of the last frame received or sent. */
  lastUsed: number
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
  // Last-used list links: prev is older, next is newer.
  prev: Connection | null = null
  next: Connection | null = null

  constructor (id: number, address: ConnectionAddress, subProtocol: string, socket: WebSocket | null, now: number) {
    this.id = id
    this.remoteAddress = address.remoteAddress
    this.remotePort = address.remotePort
    this.localAddress = address.localAddress
    this.localPort = address.localPort
    this.transport = address.transport
    this.subProtocol = subProtocol
    this.socket = socket
    this.createdAt = now
    this.lastUsed = now
  }
}

/** What `wsDump()` gives for one connection. */
export interface ConnectionInfo extends ConnectionAddress {
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
 * intrusive doubly linked list: O(1) to touch, and walking from either end yields the least or most
 * recently used first, so neither the keepalive sweep nor a dump ever sorts).
 */
export class Registry {
  private readonly byId = new Map<number, Connection>()
  private readonly perIp = new Map<string, number>()
  /** Least recently used. */
  head: Connection | null = null
  /** Most recently used. */
  tail: Connection | null = null
  private lastId = 0

  get size (): number {
    return this.byId.size
  }

  nextId (): number {
    return ++this.lastId
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
    this.append(conn)
  }

  /** Returns false when the connection was not (or no longer) registered. */
  remove (conn: Connection): boolean {
    if (!this.byId.delete(conn.id)) return false
    const left = (this.perIp.get(conn.remoteAddress) ?? 1) - 1
    if (left === 0) this.perIp.delete(conn.remoteAddress)
    else this.perIp.set(conn.remoteAddress, left)
    this.unlink(conn)
    return true
  }

  /** Marks a frame in or out: the connection becomes the most recently used. */
  touch (conn: Connection, now: number): void {
    conn.lastUsed = now
    if (this.tail === conn || conn.state === 'CLOSED') return
    this.unlink(conn)
    this.append(conn)
  }

  values (): IterableIterator<Connection> {
    return this.byId.values()
  }

  /** At most `limit` connections in the given order; cost O(limit) whatever the size. */
  dump (order: string = 'id_hash', now = Date.now(), limit = DUMP_LIMIT): DumpResult {
    const connections: ConnectionInfo[] = []
    const add = (conn: Connection): boolean => {
      connections.push(describeConnection(conn, now))
      return connections.length < limit
    }
    switch (order) {
      case 'id_hash':
        for (const conn of this.byId.values()) if (!add(conn)) break
        break
      // Kamailio sorts on "last used Ns ago": ascending is the most recently used first (observed on 5.6).
      case 'used_asc':
        for (let conn = this.tail; conn !== null; conn = conn.prev) if (!add(conn)) break
        break
      case 'used_desc':
        for (let conn = this.head; conn !== null; conn = conn.next) if (!add(conn)) break
        break
      default:
        throw new BadDumpOrderError(order)
    }
    return { connections, wscounter: this.byId.size, truncated: this.byId.size > connections.length }
  }

  private append (conn: Connection): void {
    conn.prev = this.tail
    conn.next = null
    if (this.tail !== null) this.tail.next = conn
    else this.head = conn
    this.tail = conn
  }

  private unlink (conn: Connection): void {
    if (conn.prev !== null) conn.prev.next = conn.next
    else if (this.head === conn) this.head = conn.next
    if (conn.next !== null) conn.next.prev = conn.prev
    else if (this.tail === conn) this.tail = conn.prev
    conn.prev = null
    conn.next = null
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
