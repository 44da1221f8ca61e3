import v8 from 'node:v8'
import vm from 'node:vm'

// `node --test` starts each test file's process with the flags of its own command line only, and npm test
// has no --expose-gc there. V8 reads the flag when it creates a context, so setting it at run time and asking
// a fresh context for `gc` gives the real, synchronous, whole-heap collection --expose-gc would give.
v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void

const MiB = 1024 * 1024

export interface MemorySample {
  /** V8 heap in use after full collections. */
  heapUsed: number
  /**
   * Memory outside the V8 heap that JavaScript objects hold: Buffers, and the copies of strings queued
   * for a socket write. A send queue shows here.
   */
  external: number
}

/** Heap and outside memory once garbage is collected: two full collections, so finalizers' garbage goes too. */
export function settledMemory (): MemorySample {
  gc()
  gc()
  const { heapUsed, external } = process.memoryUsage()
  return { heapUsed, external }
}

export function mib (bytes: number): string {
  return `${(bytes / MiB).toFixed(2)} MiB`
}

/** Active libuv handles and requests by type (`TCPSocketWrap`, `Timeout`, ...). */
export function activeResources (): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const type of process.getActiveResourcesInfo()) counts[type] = (counts[type] ?? 0) + 1
  return counts
}

/** The types whose count went up, with by how much. */
export function resourceGrowth (before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const grown: Record<string, number> = {}
  for (const [type, n] of Object.entries(after)) {
    const diff = n - (before[type] ?? 0)
    if (diff > 0) grown[type] = diff
  }
  return grown
}

export { MiB }
