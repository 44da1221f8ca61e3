import type { ConnectionInfo, DumpOrder, DumpResult, StatsSnapshot, WsData } from '../types'
import type { ClusterNodeInfo } from './types'

// The one seam between the WebSocket edge and the cluster, as centrifuge's Broker is: the server is given
// an IdSource and RemoteConnections at construction, the cluster is given LocalConnections when it starts,
// and neither asks whether it is clustered. One process alone is an implementation (single-process.ts), a
// node of a Redis cluster is the other (node.ts).

/** Where connection ids come from: counting in this process, or leases in cluster mode. */
export interface IdSource {
  nextId: () => number
  /** A connection with this id has closed. */
  released: (id: number) => void
}

/**
 * Operations on connections this process does not hold. The plain ones say whether the data is on its way
 * to a live owner; the confirmed ones resolve once the owner said whether it had the connection open.
 */
export interface RemoteConnections {
  send: (id: number, data: WsData) => boolean
  close: (id: number, code: number, reason: string) => boolean
  ping: (id: number) => boolean
  pong: (id: number) => boolean
  confirmSend: (id: number, data: WsData) => Promise<boolean>
  confirmClose: (id: number, code: number, reason: string) => Promise<boolean>
  confirmPing: (id: number) => Promise<boolean>
  confirmPong: (id: number) => Promise<boolean>
}

/** What the cluster needs of this process's connections: the server's operations, by id. */
export interface LocalConnections {
  readonly size: number
  has: (id: number) => boolean
  send: (id: number, data: WsData) => boolean
  closeById: (id: number, code?: number, reason?: string) => boolean
  ping: (id: number) => boolean
  pong: (id: number) => boolean
  dump: (order?: DumpOrder) => DumpResult
  statistics: () => StatsSnapshot
}

/** A cluster-wide view request, and one node's answer to it. */
export type ViewQuery = { q: 'dump', o: DumpOrder } | { q: 'stats' }
export interface ViewAnswer { instance: string, connections?: ConnectionInfo[], wscounter?: number, stats?: StatsSnapshot }

/** This process's place among the others. */
export interface Cluster {
  /** This process's name in the cluster. */
  readonly instance: string
  readonly ids: IdSource
  readonly remote: RemoteConnections
  /** Joins, with the connections this process holds; resolves once ids can be made. */
  start: (local: LocalConnections) => Promise<void>
  stop: () => Promise<void>
  /** Asks every other node; `local` is this node's own answer. Returns the answers and who did not answer. */
  ask: (query: ViewQuery, local: ViewAnswer) => Promise<{ answers: ViewAnswer[], missing: ClusterNodeInfo[] }>
  /** The live nodes as this one sees them, this one first. */
  nodes: () => ClusterNodeInfo[]
}

/** The connections of a process that holds none: what a cluster serves before it starts. */
export const NO_CONNECTIONS: LocalConnections = {
  size: 0,
  has: () => false,
  send: () => false,
  closeById: () => false,
  ping: () => false,
  pong: () => false,
  dump: () => ({ connections: [], wscounter: 0, truncated: false }),
  statistics: () => ({}) as StatsSnapshot
}
