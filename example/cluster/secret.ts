import { createHmac, randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'

/** The keys every node of a cluster must share. */
export interface ClusterKeys {
  /** Signs the Via branch (proxy/proxy-via.ts): a response may come back through any node. */
  via: Buffer
  /** Signs flow tokens (core/flow-token.ts): the core may send a token to any node. */
  flowTokens: Buffer
}

/**
 * The cluster's secret, agreed through Redis: the first node to start writes a random one with SET NX,
 * every other node reads it. No configuration to get wrong, and nothing Redis did not already hold: a
 * client of this Redis can publish to every connection through the nodes' channels anyway, so the
 * secret adds no exposure. `reassert` writes ours back (NX again) after Redis restarted empty, before a
 * new node could pick another one; false when Redis holds a different secret (a node started while Redis
 * was empty and lost the race: restart it).
 */
export class ClusterSecret {
  /** Derived once: each is an HMAC of the secret. */
  readonly keys: ClusterKeys

  private constructor (private readonly redis: Redis, private readonly key: string, private readonly value: string) {
    this.keys = { via: this.derive('via'), flowTokens: this.derive('flow-token') }
  }

  static async agree (redis: Redis, prefix: string): Promise<ClusterSecret> {
    const key = `{${prefix}}:reg:secret`
    await redis.set(key, randomBytes(32).toString('base64'), 'NX')
    const value = await redis.get(key)
    if (value === null) throw new Error(`the cluster secret ${key} vanished from Redis while it was being agreed`)
    return new ClusterSecret(redis, key, value)
  }

  async reassert (): Promise<boolean> {
    await this.redis.set(this.key, this.value, 'NX')
    return await this.redis.get(this.key) === this.value
  }

  private derive (use: string): Buffer {
    return createHmac('sha256', this.value).update(use).digest()
  }
}
