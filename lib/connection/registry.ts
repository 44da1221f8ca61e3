import { DUMP_LIMIT } from '../constants'
import { Link, OrderedList } from '../ordered-list'
import type { ConnectionInfo, DumpOrder, DumpResult } from '../types'
import type { IdSource } from '../cluster/seam'
import type { Connection } from './connection'

/**
 * The open connections: by id (a Map: O(1) lookup, and its insertion order is id order), by client address
 * (for `maxConnectionsPerIp`), and in last-used order (an intrusive list: O(1) to touch, and walking from
 * either end yields the least or most recently used first, so a dump never sorts). The only writer of
 * `lastUsed` and of the last-used order.
 */
export class Registry {
  private readonly byId = new Map<number, Connection>()
  private readonly perIp = new Map<string, number>()
  /** Head: least recently used; tail: most recently used. */
  private readonly used = new OrderedList<Connection>()
  private emptyWaiters: Array<() => void> = []

  constructor (private readonly ids: IdSource) {}

  get size (): number {
    return this.byId.size
  }

  nextId (): number {
    return this.ids.nextId()
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
    this.ids.released(conn.id)
    if (this.byId.size === 0 && this.emptyWaiters.length > 0) {
      const waiters = this.emptyWaiters
      this.emptyWaiters = []
      for (const wake of waiters) wake()
    }
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

  /** The open connections now, as a list that later closes do not change. */
  open (): Connection[] {
    const out: Connection[] = []
    for (const conn of this.byId.values()) if (conn.isOpen) out.push(conn)
    return out
  }

  /** Resolves once no connection is registered. */
  async whenEmpty (): Promise<void> {
    if (this.byId.size === 0) return
    await new Promise<void>((resolve) => { this.emptyWaiters.push(resolve) })
  }

  /** At most `limit` connections in the given order; cost O(limit) whatever the size. */
  dump (order: DumpOrder = 'id_hash', now = Date.now(), limit = DUMP_LIMIT): DumpResult {
    const connections: ConnectionInfo[] = []
    if (order === 'id_hash') {
      for (const conn of this.byId.values()) {
        if (connections.length === limit) break
        connections.push(conn.describe(now))
      }
    } else {
      // Kamailio sorts on "last used Ns ago": ascending is the most recently used first (observed on 5.6).
      const newestFirst = order === 'used_asc'
      for (let link: Link<Connection> | null = newestFirst ? this.used.tail : this.used.head; link !== null && connections.length < limit; link = newestFirst ? link.prev : link.next) {
        connections.push(link.owner.describe(now))
      }
    }
    return { connections, wscounter: this.byId.size, truncated: this.byId.size > connections.length }
  }
}

/** Kamailio's `ws.dump` line: `35: ws:127.0.0.1:42304 -> ws:127.0.0.1:8100 (state: OPEN,  last used 0s ago, sub-protocol: sip)`. */
export function dumpLine (info: ConnectionInfo): string {
  const host = (address: string): string => address.includes(':') ? `[${address}]` : address
  return `${info.id}: ${info.transport}:${host(info.remoteAddress)}:${info.remotePort} -> ${info.transport}:${host(info.localAddress)}:${info.localPort} (state: ${info.state},  last used ${info.lastUsedAgo}s ago, sub-protocol: ${info.subProtocol})`
}
