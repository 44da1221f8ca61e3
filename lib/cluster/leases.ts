import type { FastifyBaseLogger } from 'fastify'
import { ClusterUnavailableError } from '../errors'
import type { Channels } from './channels'
import { idPrefix, leaseOf, makeId, MAX_COUNTER, prefixOf } from './ids'
import { SlotLease, type Renewal } from './lease'
import type { RedisLink } from './link'
import { Presence } from './presence'
import type { IdSource } from './seam'

/** What one renewal found in Redis: the slot lease's state, and whether the node's presence had lapsed. */
export interface Renewed {
  lease: Renewal
  lapsed: boolean
}

/**
 * The node's ids: made under its current lease (ids.ts), with a new lease taken when a lease's counter runs
 * low or the lease was lost. Every lease that still has open connections stays served: its channel stays
 * subscribed, and its presence (presence.ts) renewed, so its ids keep working after the node moved on to a
 * new one.
 */
export class Leases implements IdSource {
  /** Whether a node, or a lease prefix, is alive: written here alone, read by the node's other parts. */
  readonly presence: Presence
  private readonly lease: SlotLease
  /** Lease prefixes with open connections, and how many each has; the current one is always here. */
  private readonly served = new Map<number, number>()
  private current = -1
  private counter = 0
  private rotating = false
  /** The lease found lost last, so that a loss is reported once even if taking another fails. */
  private lost = -1

  constructor (
    private readonly link: RedisLink,
    private readonly channels: Channels,
    keyPrefix: string,
    private readonly instance: string,
    ttlMs: number,
    private readonly log: FastifyBaseLogger,
    /** How long the presence outlives a renewal: as long as silence may last before it is checked. */
    presenceMs = ttlMs
  ) {
    this.lease = new SlotLease(link.commands, keyPrefix, instance, ttlMs)
    this.presence = new Presence(link.commands, keyPrefix, instance, presenceMs)
  }

  /** The prefix new ids are made under (-1 before the first lease). */
  get currentPrefix (): number {
    return this.current
  }

  /** The slot new ids are made under (-1 while none is held). */
  get slot (): number {
    return leaseOf(this.current).slot
  }

  /** Every lease prefix this node serves. */
  prefixes (): number[] {
    return [...this.served.keys()]
  }

  serves (prefix: number): boolean {
    return this.served.has(prefix)
  }

  /** A new connection's id, under the current lease. */
  nextId (): number {
    if (++this.counter > MAX_COUNTER * 0.9 && !this.rotating) void this.rotate()
    if (this.counter > MAX_COUNTER) throw new ClusterUnavailableError('no ids left under the current lease and no new lease yet')
    this.served.set(this.current, (this.served.get(this.current) ?? 0) + 1)
    return makeId(this.current, this.counter)
  }

  /** A connection closed: a lease we no longer make ids under is dropped with its last connection. */
  released (id: number): void {
    const prefix = idPrefix(id)
    const left = (this.served.get(prefix) ?? 1) - 1
    if (left > 0 || prefix === this.current) {
      this.served.set(prefix, left)
      return
    }
    this.served.delete(prefix)
    const channel = this.channels.of(prefix)
    this.channels.forget(prefix)
    if (this.link.subscriber.status === 'ready') void this.link.subscriber.unsubscribe(channel).catch(() => {})
    // Else its key runs out within nodeTimeout.
    if (this.link.ready) this.presence.drop(prefix).catch(() => {})
  }

  /** Takes a slot with a new epoch and subscribes to its channel. */
  async take (): Promise<void> {
    const lease = await this.lease.take(Date.now())
    if (lease === null) throw new ClusterUnavailableError('all 256 slots are held by other nodes')
    const prefix = prefixOf(lease)
    await this.link.subscriber.subscribe(this.channels.of(prefix))
    if (!this.served.has(prefix)) this.served.set(prefix, 0)
    const previous = this.current
    this.current = prefix
    this.counter = 0
    if (previous !== -1 && this.served.get(previous) === 0) this.released(makeId(previous, 1))
  }

  /**
   * Renews the lease and the node's presence, and says what Redis found. A lease another node took while
   * this one could not renew it is replaced by a new one, and reported lost once; its ids keep working.
   */
  async renew (): Promise<Renewed> {
    const prefix = this.current
    const [lease, present] = await Promise.all([this.lease.renew(), this.presence.renew(this.prefixes())])
    if (lease !== 'lost' || this.rotating || prefix !== this.current) return { lease: lease === 'lost' ? 'held' : lease, lapsed: !present }
    if (this.lost === prefix) return { lease: 'held', lapsed: !present }
    this.lost = prefix
    this.log.warn({ instance: this.instance, ...leaseOf(prefix) }, 'fastify-sip-ws: cluster: slot taken by another node while this one could not renew it; taking another (existing ids keep working)')
    void this.rotate()
    return { lease: 'lost', lapsed: !present }
  }

  /** Leaves: the lease and the presence go (the others see the node gone at once). */
  async release (): Promise<void> {
    await Promise.all([this.lease.release(), this.presence.leave(this.prefixes())])
  }

  /** A new lease for new ids; the old one's connections keep their ids and channel. */
  private async rotate (): Promise<void> {
    this.rotating = true
    try {
      await this.lease.release().catch(() => {})
      await this.take()
    } catch (err) {
      this.log.error({ err }, 'fastify-sip-ws: cluster: could not take a new lease')
    } finally {
      this.rotating = false
    }
  }
}
