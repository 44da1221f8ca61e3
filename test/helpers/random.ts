import { randomInt } from 'node:crypto'

/**
 * mulberry32: a tiny seeded PRNG. Fuzz tests draw everything from one, so the seed printed with a failure
 * replays the same cases (`FUZZ_SEED=<seed> npm test`).
 */
export class Rng {
  private state: number

  constructor (readonly seed: number) {
    this.state = seed >>> 0
  }

  /** In [0, 1). */
  next (): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0
    let t = this.state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  /** An integer in [min, max], both included. */
  int (min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1))
  }

  bool (probability = 0.5): boolean {
    return this.next() < probability
  }

  pick<T> (items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]
  }

  bytes (n: number): Buffer {
    const buf = Buffer.alloc(n)
    for (let i = 0; i < n; i++) buf[i] = Math.floor(this.next() * 256)
    return buf
  }

  shuffle<T> (items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1))
      const tmp = items[i]
      items[i] = items[j]
      items[j] = tmp
    }
    return items
  }

  /** A generator of its own for case `index`, so cases do not depend on how many draws earlier cases made. */
  fork (index: number): Rng {
    return new Rng(Math.imul(this.seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35))
  }
}

/** FUZZ_SEED from the environment when set (to replay a failure), else a fresh one each run. */
export function fuzzSeed (): number {
  const fromEnv = process.env.FUZZ_SEED
  if (fromEnv !== undefined && fromEnv !== '') {
    const seed = Number(fromEnv)
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new Error(`FUZZ_SEED must be an integer in [0, 2^32), got ${fromEnv}`)
    return seed
  }
  return randomInt(0, 0xffffffff)
}

/**
 * The first `max` bytes for a failure message, with the total length: as a JSON string of latin1 text (so
 * every byte shows) for text protocols, or as hex for binary ones.
 */
export function describeBytes (data: Buffer | string, max = 300, encoding: 'text' | 'hex' = 'text'): string {
  const buf = typeof data === 'string' ? Buffer.from(data, 'latin1') : data
  const head = buf.subarray(0, max)
  const shown = encoding === 'hex' ? head.toString('hex') : JSON.stringify(head.toString('latin1'))
  return `${shown}${buf.length > max ? '...' : ''} (${buf.length} bytes)`
}
