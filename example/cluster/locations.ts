import type { FastifyBaseLogger } from 'fastify'
import type { WsCluster } from '../../lib'
import type { ConnectionLocal } from '../proxy/connection-local'
import type { Binding, RegistrarListener, RemoteBinding } from '../proxy/registrar'
import type { Locations } from '../proxy/relay'
import { parseUri, type SipUri } from '../sip/uri'
import type { RedisBindings } from './redis-bindings'

/** What the proxy uses of `app.wsCluster`. */
export type ClusterPeers = Pick<WsCluster, 'instance' | 'nodes' | 'send'>

/**
 * Thrown when a binding's node cannot be told alive or dead yet: the proxy answers 480 (or hands the
 * request to the core, when there is one), not 404.
 */
export class NodeNotKnownYet extends Error {}

/**
 * The proxy's view of the cluster: the bindings of every node (Redis), the live nodes (the plugin's
 * heartbeats), and confirmed sends to connections on other nodes. As the registrar's listener it writes
 * this node's bindings through, each with the local side of its connection.
 *
 * A binding read from Redis whose node is gone is stale: its node died before it could remove it, and no
 * `cluster:node-down` purged it (every node was down, or this one was). It is purged when found, and the
 * lookup answered as if it was not there. Only once this node has been up, and Redis reachable, for
 * `nodeTimeout`, though: before that it may not have heard every live node's heartbeat yet.
 */
export class ClusterLocations implements Locations, RegistrarListener {
  private lastWrite: Promise<void> = Promise.resolve()
  /** Since when the live nodes are known: start-up, then each time Redis came back. */
  private since: number

  constructor (
    private readonly bindings: RedisBindings,
    private readonly peers: ClusterPeers,
    private readonly connections: ReadonlyMap<number, ConnectionLocal>,
    private readonly nodeTimeout: number,
    private readonly log: FastifyBaseLogger,
    private readonly now: () => number = Date.now
  ) {
    this.since = now()
  }

  /** Redis is back: nodes that started while it was away are heard from only within `nodeTimeout`. */
  redisBack (): void {
    this.since = this.now()
  }

  // ---- this node's bindings, written through --------------------------------------------------------

  saved (binding: Binding): void {
    this.write('binding', this.bindings.put(binding, this.connections.get(binding.connectionId)), binding)
  }

  removed (binding: Binding): void {
    this.write('removal', this.bindings.remove(binding), binding)
  }

  closed (connectionId: number): void {
    this.write('connection record removal', this.bindings.closed(connectionId))
  }

  /**
   * Settles once every write made so far has: they go on one Redis connection, answered in order. A
   * failed write is logged, not thrown: the binding still works on this node, and `resync` writes it
   * again once Redis is back.
   */
  async written (): Promise<void> {
    await this.lastWrite
  }

  /** Writes every binding of this node again, after Redis came back (maybe empty). */
  resync (bindings: Iterable<Binding>): number {
    let count = 0
    for (const binding of bindings) {
      this.saved(binding)
      count++
    }
    return count
  }

  private write (what: string, task: Promise<unknown>, binding?: Binding): void {
    this.lastWrite = task.then(() => {}, (err: unknown) => {
      this.log.warn({ err, aor: binding?.aor, id: binding?.connectionId }, `sip cluster: ${what} not written to Redis`)
    })
  }

  // ---- other nodes' bindings ------------------------------------------------------------------------

  /**
   * The live binding a Request-URI names on another node, or null. Rejects when Redis cannot be asked
   * (or the binding's node is not known yet): the proxy then answers 480 (or asks the core), since the
   * user may be there.
   */
  async find (ruri: SipUri): Promise<RemoteBinding | null> {
    // Bounded: each round removes what it found stale.
    for (let round = 0; round < 4; round++) {
      const found = await this.bindings.find(ruri)
      if (found === null) return null
      const gone = this.nodeGone(found.node)
      if (!gone && found.node !== this.peers.instance) return found
      await this.forget(found, gone)
    }
    return null
  }

  /** Purges what a node that went down had written (the `cluster:node-down` hook). */
  async purge (node: string): Promise<number> {
    return await this.bindings.purge(node)
  }

  /** The local side of a connection on any node, as recorded with its bindings. */
  async connection (connectionId: number): Promise<ConnectionLocal | null> {
    return await this.bindings.connection(connectionId)
  }

  async send (connectionId: number, data: string | Buffer): Promise<boolean> {
    return await this.peers.send(connectionId, data)
  }

  /**
   * Whether `node` is another node known gone; throws while that cannot be told yet. This node's own
   * bindings found in Redis are stale too, but not gone: the in-memory registrar, asked first, did not
   * have them (their removal failed while Redis was away).
   */
  private nodeGone (node: string): boolean {
    if (node === this.peers.instance || this.peers.nodes().some((n) => n.instance === node)) return false
    if (this.now() - this.since < this.nodeTimeout) throw new NodeNotKnownYet(`node ${node} not heard from yet`)
    return true
  }

  /**
   * Drops a binding found stale: all of its node's when that node is gone; else that one (its node said
   * the connection is gone: its own removal was lost while Redis was away).
   */
  async forget (binding: RemoteBinding, gone = this.nodeGone(binding.node)): Promise<void> {
    if (gone) {
      const removed = await this.bindings.purge(binding.node)
      this.log.info({ node: binding.node, removed }, 'sip cluster: bindings of a node that is gone purged')
      return
    }
    const parsed = parseUri(binding.uri)
    if (parsed !== null) await this.bindings.remove({ aor: binding.aor, connectionId: binding.connectionId, parsed }, binding.node)
  }
}
