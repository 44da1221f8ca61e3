/**
 * How the bench turns rounds into figures, noise floors and verdicts.
 *
 * Every figure is sampled once per round for each target, and a ratio of two targets is taken round by
 * round (the two shared the machine's state at that time), then its median. Every measure also runs a
 * control: a target against an identical copy of itself. The copy's per-round ratios would all be 1 on a
 * quiet, deterministic machine; how far they stray is the measure's noise floor. With six rounds or more,
 * the most extreme round at each end is set aside first: what is left is a distribution-free interval
 * for a median (with 7 rounds, the 2nd to 6th values cover the median 88% of the time; with 8, the 2nd to 7th 93%), so it bounds
 * how far a median ratio may be off, not how far one bad round was.
 *
 * The run's pooled floor (every per-core socket measure's control ratios together, 5th to 95th
 * percentile) is printed beside the goals for reference; each goal is judged on its own measure's floor.
 *
 * A goal is judged on its median, widened by the noise floor on both sides:
 * pass when the whole band meets the goal, miss when none of it does, "within noise" otherwise — the run
 * could not tell.
 */
import { spread, type Spread } from './spread'

/** Per-round samples of one figure, by target name. */
export class Samples {
  private readonly byName = new Map<string, number[]>()

  push (name: string, value: number): void {
    const list = this.byName.get(name) ?? []
    list.push(value)
    this.byName.set(name, list)
  }

  has (name: string): boolean {
    return this.byName.has(name)
  }

  values (name: string): number[] {
    return this.byName.get(name) ?? []
  }

  of (name: string): Spread {
    return spread(this.byName.get(name) ?? [])
  }

  /** The ratio of two targets' samples, round by round. */
  ratios (a: string, b: string): number[] {
    const x = this.byName.get(a) ?? []
    const y = this.byName.get(b) ?? []
    return x.map((v, i) => v / y[i]).filter((r) => Number.isFinite(r))
  }

  ratio (a: string, b: string): Spread {
    return spread(this.ratios(a, b))
  }
}

export interface Noise {
  /** What was compared: `A-copy/A`, say. */
  control: string
  /** The control's per-round ratios. */
  ratios: Spread
  /** Relative half-width of the band: 0.03 for ±3%. */
  width: number
}

/** The noise floor from a control's per-round ratios (see the top of this file). */
export function noiseFloor (control: string, ratios: readonly number[]): Noise {
  const sorted = ratios.filter(Number.isFinite).sort((a, b) => a - b)
  const kept = sorted.length >= 6 ? sorted.slice(1, -1) : sorted
  const width = kept.length === 0 ? NaN : Math.max(Math.abs(kept[0] - 1), Math.abs(kept[kept.length - 1] - 1))
  return { control, ratios: spread(sorted), width }
}

/** The noise floor of many control ratios pooled: the 5th to 95th percentile, not the extremes. */
export function pooledNoiseFloor (control: string, ratios: readonly number[]): Noise {
  const sorted = ratios.filter(Number.isFinite).sort((a, b) => a - b)
  if (sorted.length < 20) return noiseFloor(control, sorted)
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
  return { control, ratios: spread(sorted), width: Math.max(Math.abs(at(0.05) - 1), Math.abs(at(0.95) - 1)) }
}

export function noiseText (n: Noise): string {
  return Number.isFinite(n.width) ? `±${(n.width * 100).toFixed(1)}% (${n.control} ${fmt(n.ratios, 3)})` : `n/a (${n.control}: no ratio)`
}

export type Verdict = 'pass' | '**miss**' | 'within noise'

export interface Goal {
  text: string
  value: Spread
  noise: Noise
  /** The goal: the figure `>=` or `<=` the threshold. */
  op: '>=' | '<='
  threshold: number
  digits: number
}

/** The median widened by the noise floor: [median × (1 − w), median × (1 + w)]. */
export function band (g: Goal): [number, number] {
  const w = Number.isFinite(g.noise.width) ? g.noise.width : 0
  return [g.value.median * (1 - w), g.value.median * (1 + w)]
}

export function verdict (g: Goal): Verdict {
  const [low, high] = band(g)
  const meets = (x: number): boolean => g.op === '>=' ? x >= g.threshold : x <= g.threshold
  if (!Number.isFinite(g.value.median)) return '**miss**'
  if (meets(low) && meets(high)) return 'pass'
  if (!meets(low) && !meets(high)) return '**miss**'
  return 'within noise'
}

export function fmt (s: Spread, digits = 0, unit = ''): string {
  if (!Number.isFinite(s.median)) return 'n/a'
  const f = (x: number): string => x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
  return s.min === s.max ? `${f(s.median)}${unit}` : `${f(s.median)}${unit} (${f(s.min)}–${f(s.max)})`
}

export const percent = (s: Spread): string => fmt({ median: s.median * 100, min: s.min * 100, max: s.max * 100 }, 0, '%')

/** One goal's row of the Goals table: goal, measured, noise floor, band, verdict. */
export function goalRow (g: Goal): string[] {
  const [low, high] = band(g)
  const f = (x: number): string => x.toLocaleString('en-US', { minimumFractionDigits: g.digits, maximumFractionDigits: g.digits })
  return [`${g.text} ${g.op === '>=' ? '≥' : '≤'} ${f(g.threshold)}`, fmt(g.value, g.digits), noiseText(g.noise), `${f(low)}–${f(high)}`, verdict(g)]
}
