import type { Redis } from 'ioredis'

// Sets the node key and returns what it held before: nothing means the key had lapsed (or Redis lost it),
// so the others may have counted this node gone meanwhile.
const RENEW = `
local before = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return before`

/**
 * What Redis says of a node being alive. The slot lease (lease.ts) only says who makes new ids under a
 * slot; a node also serves older leases (after a rotation, or a slot lost to another node while Redis was
 * away), whose slot keys may be another node's by now. So each node keeps, with the TTL of its lease
 * (nodeTimeout) and renewed at each of its beats, by it alone:
 *
 *   <prefix>:node:<instance>       the lease prefixes it serves, space-separated: there while it is alive
 *   <prefix>:live:<lease prefix>   its instance: there while that lease prefix is served
 *
 * O(nodes) keys. A node is gone when its node key is absent (a purge script can check the same key
 * atomically); a lease prefix reaches nobody when its live key is absent.
 */
export class Presence {
  private readonly nodeKey: string

  constructor (private readonly redis: Redis, private readonly keyPrefix: string, private readonly instance: string, private readonly ttlMs: number) {
    this.nodeKey = nodeKey(keyPrefix, instance)
  }

  private liveKey (prefix: number): string {
    return `${this.keyPrefix}:live:${prefix}`
  }

  /** Writes this node's keys; resolves true when its node key was still there, false when it had lapsed. */
  async renew (prefixes: readonly number[]): Promise<boolean> {
    const ttl = String(this.ttlMs)
    const before = this.redis.eval(RENEW, 1, this.nodeKey, prefixes.join(' '), ttl)
    await Promise.all(prefixes.map(async (prefix) => await this.redis.set(this.liveKey(prefix), this.instance, 'PX', ttl)))
    return await before !== null
  }

  /** A lease prefix is no longer served: ids under it reach nobody from now on. */
  async drop (prefix: number): Promise<void> {
    await this.redis.del(this.liveKey(prefix))
  }

  /** This node leaves: its keys go at once, so the others need not wait for them to run out. */
  async leave (prefixes: readonly number[]): Promise<void> {
    await this.redis.del(this.nodeKey, ...prefixes.map((p) => this.liveKey(p)))
  }

  /** Whether the node `instance` is alive, as Redis says. */
  async alive (instance: string): Promise<boolean> {
    return await this.redis.exists(nodeKey(this.keyPrefix, instance)) === 1
  }

  /** Whether some node serves the lease prefix `prefix`, as Redis says. */
  async served (prefix: number): Promise<boolean> {
    return await this.redis.exists(this.liveKey(prefix)) === 1
  }
}

/** The key that is there while the node `instance` is alive (see Presence). */
export function nodeKey (keyPrefix: string, instance: string): string {
  return `${keyPrefix}:node:${instance}`
}
