/**
 * What `npm run bench` prints: markdown tables, each measure's noise floor, and the goals with their
 * verdicts at the end (bench/verdict.ts judges them).
 */
import { loadavg } from 'node:os'
import { spread } from './spread'
import { goalRow, noiseText, pooledNoiseFloor, type Goal, type Noise } from './verdict'

export const out = (line = ''): void => { process.stdout.write(line + '\n') }
export const plural = (n: number, what: string): string => `${n.toLocaleString('en-US')} ${what}${n === 1 ? '' : 's'}`

export function table (header: string[], rows: string[][]): void {
  out(`| ${header.join(' | ')} |`)
  out(`|${header.map(() => '---').join('|')}|`)
  for (const row of rows) out(`| ${row.join(' | ')} |`)
  out()
}

/** The 1, 5 and 15 minute load averages: printed beside every measure, since other jobs share the machine. */
export const loadAverage = (): string => loadavg().map((x) => x.toFixed(2)).join(' ')

export class Report {
  readonly goals: Goal[] = []
  /** Every per-core socket measure's control ratios per server CPU-second (C-copy/C). */
  readonly controlPool: number[] = []

  goal (text: string, ratios: number[], noise: Noise, op: Goal['op'], threshold: number, digits = 2): void {
    this.goals.push({ text, value: spread(ratios), noise, op, threshold, digits })
  }

  /** The Goals table; each goal judged on its own measure's noise floor. */
  printGoals (): void {
    out('### Goals')
    out()
    out('Judged on the median ratio widened by its own measure\'s noise floor (the control, C-copy against C, in the')
    out('same rounds): pass when the whole band meets the goal, miss when none of it does, "within noise" when the')
    out('run cannot tell.')
    out()
    if (this.controlPool.length > 0) {
      const pooled = pooledNoiseFloor('C-copy/C per server CPU-second, every per-core socket measure pooled', this.controlPool)
      out(`For reference, the run-wide floor: ${noiseText(pooled)}, from ${this.controlPool.length} control ratios.`)
      out()
    }
    table(['goal', 'measured (median, min–max of rounds)', 'noise floor', 'band', 'verdict'], this.goals.map(goalRow))
  }
}
