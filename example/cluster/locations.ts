import type { FastifyBaseLogger } from 'fastify'
import type { WsCluster } from '../../lib'
import type { ConnectionLocal } from '../proxy/connection-local'
import type { Binding, MovingUser, RegistrarListener, RemoteBinding } from '../proxy/registrar'
import type { Locations } from '../proxy/relay'
import { parseUri, type SipUri } from '../sip/uri'
import type { BoundConnection, RedisBindings } from './redis-bindings'

/** What the proxy uses of `app.wsCluster`. */
export type ClusterPeers = Pick<WsCluster, 'instance' | 'send' | 'close'>

/** How long users wait: moving between nodes, and while the nodes write their bindings again. */
export interface LocationTiming {
  /**
   * How long a user whose connection is leaving in a drain stays "moving": requests for it wait that long
   * for its registration on another node (ms). Counted from when its connection starts leaving, which may
   * be up to 8 s before it closes (example/drain.ts); JsSIP then waits 2 s before it reconnects, and 2–4 s
   * more when its first try finds the draining node: a UA moves in 2–8 s.
   */
  movingMs: number
  /**
   * After Redis came back (maybe empty), a user found nowhere may be one whose node has not written its
   * bindings again yet (each does within a second): for this long (ms) requests for it wait as for a
   * moving user, rather than get 404.
   */
  rebuildMs: number
  /** Told when a binding is made here: requests waiting for that user may go now. */
  registeredHere: (aor: string) => void
}

export const LOCATION_TIMING: LocationTiming = { movingMs: 18000, rebuildMs: 2000, registeredHere: () => {} }

/** RFC 5626 §6: a flow replaced by a new registration of its UA is closed with this. */
const FLOW_REPLACED = { code: 1000, reason: 'flow replaced by a new registration' }

/**
 * The proxy's view of the cluster: the bindings of every node (Redis), and confirmed sends to connections
 * on other nodes. As the registrar's listener it writes this node's bindings through, each with the local
 * side of its connection.
 *
 * Redis is the truth, never this node's view of the others: a binding is relayed to whichever node it
 * names (a node that started a moment ago included), and only the owner's answer, or Redis saying its
 * lease is gone, removes it. A binding whose connection this node is closing for a drain is not removed
 * but marked moving (`movingMs`), so that requests for its user wait for its registration elsewhere.
 */
export class ClusterLocations implements Locations, RegistrarListener {
  private lastWrite: Promise<void> = Promise.resolve()
  /** Connections this node is closing for a drain: their bindings move rather than go. */
  private readonly leaving = new Set<number>()
  private readonly timing: LocationTiming
  /** Until when the nodes may still be writing their bindings again, after Redis came back. */
  private rebuildingUntil = 0

  constructor (
    private readonly bindings: RedisBindings,
    private readonly peers: ClusterPeers,
    private readonly connections: ReadonlyMap<number, ConnectionLocal>,
    private readonly log: FastifyBaseLogger,
    timing: Partial<LocationTiming> = {}
  ) {
    this.timing = { ...LOCATION_TIMING, ...timing }
  }

  /** Redis is back, maybe empty: the other nodes are writing their bindings again. */
  redisBack (): void {
    this.rebuildingUntil = Date.now() + this.timing.rebuildMs
  }

  // ---- this node's bindings, written through --------------------------------------------------------

  saved (binding: Binding): void {
    const put = this.bindings.put(binding, this.connections.get(binding.connectionId))
    this.write('binding', put.then((replaced) => { if (replaced !== null) this.closeReplaced(binding, replaced) }), binding)
    this.timing.registeredHere(binding.aor)
  }

  removed (binding: Binding): void {
    const moving = this.leaving.has(binding.connectionId) ? this.timing.movingMs : 0
    this.write(moving > 0 ? 'move' : 'removal', this.bindings.remove(binding, undefined, moving), binding)
  }

  /** The connection will close because this node drains: its bindings, dropped from now on, move. */
  moving (connectionId: number): void {
    this.leaving.add(connectionId)
  }

  closed (connectionId: number): void {
    this.leaving.delete(connectionId)
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

  /** Writes every binding of this node again: Redis came back (maybe empty), or others counted it gone. */
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

  /** RFC 5626 §6: the UA registered the same flow over another connection, so the old one is done. */
  private closeReplaced (binding: Binding, old: BoundConnection): void {
    this.log.info({ aor: binding.aor, id: binding.connectionId, replaced: old.connectionId, node: old.node }, 'sip cluster: flow replaced by a new registration; closing the old connection')
    this.peers.close(old.connectionId, FLOW_REPLACED.code, FLOW_REPLACED.reason).catch((err: unknown) => {
      this.log.info({ err, replaced: old.connectionId, node: old.node }, 'sip cluster: replaced flow not closed (its node will drop it with its connection)')
    })
  }

  // ---- other nodes' bindings ------------------------------------------------------------------------

  /**
   * The live binding a Request-URI names on another node, whether its user is moving there, or null.
   * Just after Redis came back, a user found nowhere is taken for moving: its node may not have written
   * its bindings again yet. Rejects when Redis cannot be asked: the proxy then answers 480 (or asks the
   * core), since the user may be there.
   */
  async find (ruri: SipUri): Promise<RemoteBinding | MovingUser | null> {
    // Bounded: each round removes a stale binding of this node's.
    for (let round = 0; round < 4; round++) {
      const found = await this.bindings.find(ruri)
      if (found === null && Date.now() < this.rebuildingUntil) return { aor: ruri.user ?? '', movingUntil: this.rebuildingUntil }
      if (found === null || !('node' in found) || found.node !== this.peers.instance) return found
      // This node's own, which the in-memory registrar (asked first) did not have: its removal failed while
      // Redis was away.
      await this.forget(found)
    }
    return null
  }

  /**
   * Purges what a node wrote (the `cluster:node-down` hook) unless Redis says it is alive: how many
   * bindings went, or -1.
   */
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

  /** Drops one binding its node said has no open connection behind it (or this node's own, stale). */
  async forget (binding: RemoteBinding): Promise<void> {
    const parsed = parseUri(binding.uri)
    if (parsed !== null) await this.bindings.remove({ aor: binding.aor, connectionId: binding.connectionId, parsed }, binding.node)
  }
}
