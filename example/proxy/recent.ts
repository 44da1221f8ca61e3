/**
 * What the edge remembers for a while of the transactions it saw: values that live `lifetimeMs` and
 * at most `maxEntries` of them, the oldest dropped first. Entries are kept in the order they were set,
 * and all live as long, so the expired ones are at the front: each `set` clears them with no timer.
 */
export class Recent<V> {
  private readonly entries = new Map<string, { value: V, expiresAt: number }>()

  constructor (private readonly lifetimeMs: number, private readonly maxEntries = 10000, private readonly now: () => number = Date.now) {}

  set (key: string, value: V): void {
    const now = this.now()
    this.entries.delete(key)
    for (const [k, e] of this.entries) {
      if (e.expiresAt > now && this.entries.size < this.maxEntries) break
      this.entries.delete(k)
    }
    this.entries.set(key, { value, expiresAt: now + this.lifetimeMs })
  }

  /** The value while it lives; undefined once expired or never set. */
  get (key: string): V | undefined {
    const entry = this.entries.get(key)
    return entry !== undefined && entry.expiresAt > this.now() ? entry.value : undefined
  }

  get size (): number {
    return this.entries.size
  }
}
