// Connections with no socket, for tests of the bookkeeping (registry, keepalive, hooks) at any scale.
import type { IdSource } from '../../lib/cluster/seam'
import { Connection } from '../../lib/connection/connection'
import { Registry } from '../../lib/connection/registry'
import { Stats } from '../../lib/connection/stats'
import type { ConnectionAddress } from '../../lib/types'

const counters = new Stats(['sip']).forProtocol('sip')

/** Ids from 1, as one process counts them. */
export function countedIds (): IdSource {
  let last = 0
  return { nextId: () => ++last, released: () => {} }
}

export function registry (): Registry {
  return new Registry(countedIds())
}

/** A connection with no socket; its address defaults to one that differs per id. */
export function entry (id: number, now = 0, address: Partial<ConnectionAddress> = {}): Connection {
  return new Connection(id, { remoteAddress: '10.0.0.1', remotePort: id & 0xffff, localAddress: '127.0.0.1', localPort: 80, transport: 'ws', ...address }, 'sip', null, counters, now)
}
