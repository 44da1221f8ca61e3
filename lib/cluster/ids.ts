/**
 * Connection ids in cluster mode: plain safe integers (below 2^53) that name their node, so routing needs
 * no lookup.
 *
 *   id = ((slot × 2^EPOCH_BITS) + epoch) × 2^COUNTER_BITS + counter
 *
 * - slot (8 bits, 0–255): leased in Redis with a TTL, so Redis holds O(nodes) keys.
 * - epoch (22 bits): the second (mod 2^22, about 48 days) at which the node took its lease on the slot.
 *   A slot is never taken twice in one second, and the epoch comes from the clock, not from Redis, so it
 *   survives Redis losing its data: after a restart or a failover a new lease on the same slot has a new
 *   epoch, and the ids of the old one (still open on their node, or long gone) can never name one of its
 *   connections.
 * - counter (23 bits): counts the node's connections under that lease; when it runs out the node takes a
 *   new epoch.
 *
 * The "prefix" (slot and epoch together) names one lease; each has its own pub/sub channel, which only
 * the node holding it subscribes to. A message for an id is published on its prefix's channel: it reaches
 * that node or nobody, never another node's connection.
 */
export const SLOT_BITS = 8
export const EPOCH_BITS = 22
export const COUNTER_BITS = 23
export const MAX_SLOTS = 2 ** SLOT_BITS
export const MAX_COUNTER = 2 ** COUNTER_BITS - 1
const EPOCHS = 2 ** EPOCH_BITS
const COUNTERS = 2 ** COUNTER_BITS

/** The lease a prefix names. */
export interface Lease {
  slot: number
  epoch: number
}

/** The epoch for a lease taken at `nowMs`: whole seconds, wrapping after about 48 days. */
export function epochAt (nowMs: number): number {
  return Math.floor(nowMs / 1000) % EPOCHS
}

export function prefixOf (lease: Lease): number {
  return lease.slot * EPOCHS + lease.epoch
}

export function leaseOf (prefix: number): Lease {
  return { slot: Math.floor(prefix / EPOCHS), epoch: prefix % EPOCHS }
}

/** The prefix an id was made under, or -1 for a value that is no cluster id. */
export function idPrefix (id: number): number {
  return Number.isSafeInteger(id) && id > 0 ? Math.floor(id / COUNTERS) : -1
}

export function makeId (prefix: number, counter: number): number {
  return prefix * COUNTERS + counter
}
