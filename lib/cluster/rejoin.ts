import type { Renewed } from './leases'
import type { ClusterRejoinedEvent, RejoinReason } from './types'

/**
 * Whether the others may have counted this node gone, told by what each renewal found in Redis and by how
 * long the node's loop was away; `rejoined` is called once each time they may have:
 *
 * - 'lease-lost': another node holds the slot it made ids under (taken while this one could not renew);
 * - 'lease-expired': its lease or presence had run out (it stalled, or was cut off from Redis, past
 *   nodeTimeout) or Redis came back without them (restarted empty, or failed over to a replica that had
 *   not got them), and they were written back;
 * - 'stalled': its loop was away past nodeTimeout and Redis said neither (a renewal that raced the stall).
 *
 * By then its lease and presence are back in Redis: what the app writes back in the hook is not purged
 * again by a survivor's late `cluster:node-down` that checks the node's presence first.
 */
export class Rejoin {
  /** When Redis last confirmed the node's lease and presence (0: not yet, the first renewal joins). */
  private confirmed = 0
  private stalledFor = 0

  constructor (
    private readonly instance: string,
    private readonly nodeTimeout: number,
    private readonly rejoined: (event: ClusterRejoinedEvent) => void
  ) {}

  /** The node's loop was away `gapMs` (the timer ran that late). */
  away (gapMs: number): void {
    if (gapMs > this.nodeTimeout) this.stalledFor = Math.max(this.stalledFor, gapMs)
  }

  /** What a renewal found in Redis at `now`. */
  renewed ({ lease, lapsed }: Renewed, now: number): void {
    const reason: RejoinReason | null = lease === 'lost'
      ? 'lease-lost'
      : lapsed || lease === 'expired' ? 'lease-expired' : this.stalledFor > 0 ? 'stalled' : null
    if (reason !== null && this.confirmed !== 0) this.rejoined({ instance: this.instance, reason, gapMs: now - this.confirmed })
    this.stalledFor = 0
    this.confirmed = now
  }
}
