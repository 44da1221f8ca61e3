/** Garbage collections inside a bench target since the last reading, by kind, from perf_hooks' 'gc' entries. */
import { PerformanceObserver, constants, type PerformanceEntry } from 'node:perf_hooks'

export interface GcCount { minor: number, major: number, ms: number }

let count: GcCount = { minor: 0, major: 0, ms: 0 }
let observer: PerformanceObserver | null = null

export function watchGc (): void {
  if (observer !== null) return
  observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR) count.minor++
      else count.major++
      count.ms += entry.duration
    }
  })
  observer.observe({ entryTypes: ['gc'] })
}

/** What was counted since the last call; starts again from zero. */
export function takeGcCount (): GcCount {
  const taken = count
  count = { minor: 0, major: 0, ms: 0 }
  return taken
}
