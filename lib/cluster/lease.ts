import type { Redis } from 'ioredis'
import { epochAt, MAX_SLOTS, prefixOf, type Lease } from './ids'

// The slot key holds "<instance> <epoch>" while leased, "- <epoch>" for a moment after a release. Taking a
// slot is refused while either is there, so one slot is never taken twice within the same second and a new
// lease always gets a new epoch (ids.ts).
const TAKE = `
local held = redis.call('GET', KEYS[1])
if held == false then
  redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0`

// Renews our own lease (1). A key gone altogether (Redis restarted, or our lease ran out unseen) is taken
// back with the same epoch (2), so the ids made under it stay ours; one held by another node means the
// lease is lost (0).
const RENEW = `
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if held == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0`

/** What renewing found: the lease still held, taken back after it ran out (or Redis lost it), or another node's now. */
export type Renewal = 'held' | 'expired' | 'lost'
const RENEWALS: readonly Renewal[] = ['lost', 'held', 'expired']

/** A slot's key. */
export const slotKey = (keyPrefix: string, slot: number): string => `${keyPrefix}:slot:${slot}`

/** A lease another node holds, as its slot key says. */
export interface Holder extends Lease {
  instance: string
}

/**
 * Every slot's holder, read in one MGET: how a node starting knows the others before their first
 * heartbeat. A slot just released ("- <epoch>") has none.
 */
export async function holders (redis: Redis, keyPrefix: string): Promise<Holder[]> {
  const values = await redis.mget(Array.from({ length: MAX_SLOTS }, (_, slot) => slotKey(keyPrefix, slot)))
  const found: Holder[] = []
  values.forEach((value, slot) => {
    const match = value === null ? null : /^([^ ]+) (\d+)$/.exec(value)
    if (match !== null && match[1] !== '-') found.push({ instance: match[1], slot, epoch: Number(match[2]) })
  })
  return found
}

// Leaves a tombstone that outlives the current second instead of deleting the key.
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], '- ' .. ARGV[2], 'PX', 1500)
  return 1
end
return 0`

/**
 * A node's lease on a slot: taken with a TTL of `ttlMs`, renewed well before it runs out, released at
 * close. While Redis is away nothing can be renewed; the lease may then run out and the slot go to another
 * node, which is safe: that node's lease has another epoch, so no id of ours can name its connections.
 */
export class SlotLease {
  lease: Lease | null = null
  private value = ''

  constructor (private readonly redis: Redis, private readonly keyPrefix: string, private readonly instance: string, private readonly ttlMs: number) {}

  private key (slot: number): string {
    return slotKey(this.keyPrefix, slot)
  }

  /**
   * Takes the first free slot at or after a random start (so nodes starting together do not all race for
   * slot 0) with a new epoch. Null when all 256 are held.
   */
  async take (nowMs: number): Promise<Lease | null> {
    const epoch = epochAt(nowMs)
    const start = Math.floor(Math.random() * MAX_SLOTS)
    for (let i = 0; i < MAX_SLOTS; i++) {
      const slot = (start + i) % MAX_SLOTS
      if (await this.redis.eval(TAKE, 1, this.key(slot), this.instance, String(epoch), String(this.ttlMs)) === 1) {
        this.lease = { slot, epoch }
        this.value = `${this.instance} ${epoch}`
        return this.lease
      }
    }
    return null
  }

  /** Renews the lease, or takes it back if it ran out; 'lost' once another node has the slot (or none is held). */
  async renew (): Promise<Renewal> {
    if (this.lease === null) return 'lost'
    return RENEWALS[Number(await this.redis.eval(RENEW, 1, this.key(this.lease.slot), this.value, String(this.ttlMs)))] ?? 'lost'
  }

  async release (): Promise<void> {
    if (this.lease === null) return
    const { slot, epoch } = this.lease
    this.lease = null
    await this.redis.eval(RELEASE, 1, this.key(slot), this.value, String(epoch))
  }

  get prefix (): number {
    return this.lease === null ? -1 : prefixOf(this.lease)
  }
}
