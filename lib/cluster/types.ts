import type { DumpOrder, DumpResult, StatsSnapshot, WsData } from '../types'

// The public types of cluster mode, apart from the code: nothing here may need ioredis, an optional peer
// dependency, so a TypeScript user without it still type-checks the package.

/** An ioredis client, by the shape the plugin relies on (`@fastify/redis`'s `app.redis` is one). */
export interface RedisClientLike {
  duplicate: (...args: any[]) => unknown
  publish: (...args: any[]) => unknown
  status: string
}

/** ioredis options for Redis Sentinel: where the sentinels are and the name of the master they watch. */
export interface RedisSentinelOptions {
  sentinels: Array<{ host: string, port: number }>
  name: string
  [option: string]: unknown
}

/**
 * What `cluster.redis` may be: a `redis://` URL, ioredis options (an object; Sentinel options among them),
 * or an ioredis client.
 */
export type RedisSource = string | RedisClientLike | RedisSentinelOptions | { [option: string]: unknown }

/**
 * A node as the others see it, from its heartbeats (or, for a node known before its first heartbeat came,
 * from its slot lease in Redis: then `host` is '', `pid` 0 and `connections` 0 until it beats).
 */
export interface ClusterNodeInfo {
  /** Random per process start: a restarted node is a new node. */
  instance: string
  /** The slot it makes new ids under (-1 while it holds none). */
  slot: number
  /** Every lease it still has connections under (slot and epoch together, see ids.ts). */
  prefixes: number[]
  host: string
  pid: number
  /** Open connections when it last said. */
  connections: number
  /** Milliseconds (Date.now()) of its last heartbeat (or of learning it from Redis); now for this node. */
  lastSeen: number
  self: boolean
}

/** Why a node may have been counted gone by the others (see `cluster:rejoined`). */
export type RejoinReason = 'lease-expired' | 'lease-lost' | 'stalled'

/** `cluster:rejoined`: this node is back after the others may have counted it gone. */
export interface ClusterRejoinedEvent {
  /** This node's instance (the same as before: its connections and ids are unchanged). */
  instance: string
  reason: RejoinReason
  /** Milliseconds since Redis last confirmed this node's lease: how long it may have been counted gone. */
  gapMs: number
}

/** A node that did not answer a cluster-wide view in time. */
export interface MissingNode {
  instance: string
  slot: number
}

/** `wsCluster.dump()`: the first 50 connections cluster-wide, in the order asked. */
export interface ClusterDump extends DumpResult {
  /** Nodes whose connections are in the result, this one included. */
  answered: number
  /** Nodes that did not answer within `requestTimeout`: the result is partial without them. */
  missing: MissingNode[]
}

export interface ClusterStats {
  /** Every counter summed over the nodes that answered (maxima are sums of each node's maximum). */
  total: StatsSnapshot
  /** Each answering node's own counters, by instance. */
  nodes: Record<string, StatsSnapshot>
  missing: MissingNode[]
}

/** `app.wsCluster`: the cluster-wide operations, each confirmed by the node that holds the connection. */
export interface WsCluster {
  /** This process's name in the cluster (random per start, with the pid). */
  readonly instance: string
  /**
   * Sends to a connection on any node; resolves true once its node says it was open and took the data,
   * false when no live node has it. Rejects with FST_SIPWS_CLUSTER_UNAVAILABLE (Redis away),
   * FST_SIPWS_CLUSTER_TIMEOUT or FST_SIPWS_CLUSTER_NODE_GONE when the outcome cannot be known.
   */
  send: (id: number, data: WsData) => Promise<boolean>
  close: (id: number, status?: number, reason?: string) => Promise<boolean>
  ping: (id: number) => Promise<boolean>
  pong: (id: number) => Promise<boolean>
  dump: (order?: DumpOrder) => Promise<ClusterDump>
  stats: () => Promise<ClusterStats>
  /** The live nodes as this one sees them, this one first. */
  nodes: () => ClusterNodeInfo[]
}

