/**
 * A load generator's measured window and its latency samples (bench/load.ts, bench/storm.ts).
 */
export interface LoadResult {
  /** Operations completed inside the measured window. */
  done: number
  failed: number
  seconds: number
  /** CPU time of this process over the window, as a fraction of one core. */
  cpu: number
  p50?: number
  p99?: number
  firstError?: string
}

const MAX_SAMPLES = 4_000_000

/**
 * The measured window. run.ts samples the target's CPU time at its 'start' and 'end' marks, so the
 * target's work outside the window (opening and closing connections) is not charged to the figure.
 */
export class Window {
  private readonly cpu0 = process.cpuUsage()
  private readonly t0 = process.hrtime.bigint()
  private closed: { seconds: number, cpu: number } | null = null
  constructor () { process.send?.({ mark: 'start' }) }

  /** Closes the window now; what happens after it is not counted. */
  end (): void {
    if (this.closed !== null) return
    const seconds = Number(process.hrtime.bigint() - this.t0) / 1e9
    const used = process.cpuUsage(this.cpu0)
    this.closed = { seconds, cpu: (used.user + used.system) / 1e6 / seconds }
    process.send?.({ mark: 'end' })
  }

  finish (done: number, failed: number, firstError?: string, latencies?: Latencies): LoadResult {
    this.end()
    const { seconds, cpu } = this.closed as { seconds: number, cpu: number }
    const result: LoadResult = { done, failed, seconds, cpu }
    if (firstError !== undefined) result.firstError = firstError
    if (latencies !== undefined) Object.assign(result, latencies.percentiles())
    return result
  }
}

export class Latencies {
  private readonly samples = new Float64Array(MAX_SAMPLES)
  private n = 0
  add (ms: number): void { if (this.n < MAX_SAMPLES) this.samples[this.n++] = ms }
  percentiles (): { p50: number, p99: number } {
    const sorted = this.samples.slice(0, this.n).sort()
    const at = (q: number): number => sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
    return { p50: at(0.5), p99: at(0.99) }
  }
}

export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6
