/**
 * One figure of a rate measure: load commands against a target, the target's CPU over the measured window
 * (split into user and system time), and what the rest of the machine did meanwhile. Then rounds of them,
 * alternated, and the table each rate measure prints.
 */
import type { Loader } from './loader'
import type { LoadCommand } from './load'
import { pin, type Cores } from './pin'
import { cpuSeconds, helperCpuSeconds, machineBusySeconds, procCounters, procDelta, type ProcCounters } from './proc'
import { out, table } from './report'
import type { Target } from './servers'
import { spread } from './spread'
import { fmt, noiseFloor, noiseText, percent, Samples, type Noise } from './verdict'

/** The control of every socket measure: raw ws against an identical second raw ws. */
export const CONTROL: [string, string] = ['C-copy', 'C']

/**
 * Fresh processes for every Node target of a measure, at once, pinned again: what one process's luck
 * (heap and code layout, JIT decisions) adds to its figures then varies from round to round, and the
 * control's floor covers it, instead of staying for the whole run.
 */
export async function freshTargets (cores: Cores, targets: Target[], loaders: Loader[]): Promise<void> {
  await Promise.all(targets.map(async (t) => await t.restart?.()))
  place(cores, 'core', targets, loaders)
}

/** Per core: servers on the server core, load (and the bench) on the others. Whole machine: anywhere. */
export function place (cores: Cores, placement: 'core' | 'machine', targets: Target[], loaders: Loader[]): void {
  if (!cores.pinned) return
  const [server, load] = placement === 'core' ? [cores.server, cores.load] : [cores.all, cores.all]
  for (const t of targets) pin(t.pids(), server)
  pin([process.pid, ...loaders.map((l) => l.pid)], load)
}

export interface Observation {
  rate: number
  perCpu: number
  /** Server CPU as a fraction of one core: all of it (scheduler, ns), and user and system (ticks). */
  serverCpu: number
  user: number
  system: number
  /** Of serverCpu: the Node processes' threads other than the main one (JIT compiler, GC helpers). */
  helpers: number
  loadCpu: number
  /** CPU the rest of the machine used meanwhile (other jobs): machine − server − load. */
  otherCpu: number
  p50?: number
  p99?: number
}

/**
 * Load commands run at once on several loaders against one target, with the target's CPU from the first
 * window's start mark to the last one's end mark. The rate sums each loader's own.
 */
export async function observe (loaders: Loader[], target: Target, commands: LoadCommand[], warn: (line: string) => void): Promise<Observation> {
  let starts = 0
  let ends = 0
  let cpu0 = 0
  let cpu1 = 0
  let busy0 = 0
  let busy1 = 0
  let helpers0 = 0
  let helpers1 = 0
  let t0 = 0n
  let t1 = 0n
  let counters0: ProcCounters | null = null
  let counters: ProcCounters | null = null
  const onMark = (mark: string): void => {
    if (mark === 'start' && starts++ === 0) { cpu0 = cpuSeconds(target.pids()); counters0 = procCounters(target.pids()); helpers0 = helperCpuSeconds(target.pids()); busy0 = machineBusySeconds(); t0 = process.hrtime.bigint() }
    if (mark === 'end' && ++ends === commands.length) { cpu1 = cpuSeconds(target.pids()); counters = procCounters(target.pids()); helpers1 = helperCpuSeconds(target.pids()); busy1 = machineBusySeconds(); t1 = process.hrtime.bigint() }
  }
  const results = await Promise.all(commands.map(async (c, i) => await loaders[i].run(c, onMark)))
  for (const r of results) if (r.failed > 0) warn(`  ! ${target.name} ${commands[0].cmd}: ${r.failed} failed (${r.firstError ?? ''})`)
  const seconds = Number(t1 - t0) / 1e9
  const rate = results.reduce((sum, r) => sum + r.done / r.seconds, 0)
  const serverCpu = (cpu1 - cpu0) / seconds
  const split = counters0 !== null && counters !== null ? procDelta(counters0, counters) : { user: NaN, system: NaN }
  const loadCpu = results.reduce((sum, r) => sum + r.cpu, 0)
  return {
    rate,
    perCpu: rate / serverCpu,
    serverCpu,
    user: split.user / seconds,
    system: split.system / seconds,
    helpers: (helpers1 - helpers0) / seconds,
    loadCpu,
    otherCpu: Math.max(0, (busy1 - busy0) / seconds - serverCpu - loadCpu),
    p50: results[0].p50,
    p99: results[0].p99
  }
}

/**
 * Every figure of a measure, sampled once per round and target, and each target's ratio to the reference
 * (C) round by round: from one window shared by both in paired rounds, from two windows one after the other
 * in alternated rounds.
 */
export class Figures {
  readonly rate = new Samples()
  readonly perCpu = new Samples()
  readonly p50 = new Samples()
  readonly p99 = new Samples()
  readonly server = new Samples()
  /** µs of server CPU per operation, in user space and in the kernel. */
  readonly userUs = new Samples()
  readonly systemUs = new Samples()
  /** µs per operation on the threads beside the main one (compiler, GC helpers): warm-up left in a window. */
  readonly helperUs = new Samples()
  readonly load = new Samples()
  readonly other = new Samples()
  /** Per round: the target's figure over the reference's (per server CPU-second, and per second). */
  private readonly vsRef = { perCpu: new Samples(), rate: new Samples() }

  constructor (readonly ref: string) {}

  add (name: string, o: Observation): void {
    this.rate.push(name, o.rate)
    this.perCpu.push(name, o.perCpu)
    this.p50.push(name, o.p50 ?? NaN)
    this.p99.push(name, o.p99 ?? NaN)
    this.server.push(name, o.serverCpu)
    this.userUs.push(name, o.user / o.rate * 1e6)
    this.systemUs.push(name, o.system / o.rate * 1e6)
    this.helperUs.push(name, o.helpers / o.rate * 1e6)
    this.load.push(name, o.loadCpu)
    this.other.push(name, o.otherCpu)
  }

  /** A round's ratio of `name` to the reference, from observations that shared the machine's state. */
  against (name: string, o: Observation, ref: Observation): void {
    this.vsRef.perCpu.push(name, o.perCpu / ref.perCpu)
    this.vsRef.rate.push(name, o.rate / ref.rate)
  }

  has (name: string): boolean {
    return this.perCpu.has(name)
  }

  /** `a` over `b`, round by round; through the reference when neither is it: (a/C) / (b/C). */
  ratios (a: string, b: string, figure: 'perCpu' | 'rate' = 'perCpu'): number[] {
    const vs = this.vsRef[figure]
    const of = (name: string): number[] => name === this.ref ? vs.values(a === this.ref ? b : a).map(() => 1) : vs.values(name)
    const x = of(a)
    const y = of(b)
    return x.map((v, i) => v / y[i]).filter(Number.isFinite)
  }

  /** The control's noise floor on one figure. */
  noise (figure: 'rate' | 'perCpu'): Noise {
    return noiseFloor(CONTROL.join('/'), this.ratios(...CONTROL, figure))
  }
}

/**
 * Each round visits every target once, starting one further along, and every other round in reverse: no
 * target always goes first, and each follows its neighbour as often as it precedes it (C-copy right after
 * C in every round would turn whatever the previous target leaves behind into a bias of the control).
 */
export function rotated<T> (list: T[], round: number): T[] {
  const k = Math.floor(round / 2) % list.length
  const turned = [...list.slice(k), ...list.slice(0, k)]
  return round % 2 === 0 ? turned : turned.reverse()
}

/** One observation of a target from load slot 0 or 1 (two loaders, two source addresses). */
export type ObserveOne = (t: Target, slot: 0 | 1) => Promise<Observation>

export interface RoundOptions {
  paired: boolean
  ref: string
  /** Before each round: fresh target processes. */
  fresh?: () => Promise<void>
  /** More processes of the reference, so that each pair of a round has one as fresh as its target. */
  spareRefs?: Target[]
  /** One unrecorded observation of every target before the rounds: the processes stay, warmed alike. */
  warmFirst?: boolean
}

/**
 * Rounds of a per-core measure. Paired (the default): in each round every target runs at the same time as
 * the reference, both servers on the one server core and each with its own load, and the ratio is taken
 * over that shared window: whatever the host does to the core meanwhile (other jobs, other virtual
 * machines, the clock) falls on both alike. Alternated: each target alone, one after the other, as the
 * whole-machine measure must.
 */
export async function inRounds (targets: Target[], rounds: number, one: ObserveOne, opts: RoundOptions): Promise<Figures> {
  const f = new Figures(opts.ref)
  const ref = targets.find((t) => t.name === opts.ref)
  if (opts.warmFirst === true) for (const t of targets) await one(t, 0)
  for (let round = 0; round < rounds; round++) {
    await opts.fresh?.()
    if (opts.paired && ref !== undefined) {
      // Every pair gets a reference process as fresh as its target: one reference through all the pairs
      // of a round had warmed up over the pairs before, a bias against whoever came later (the
      // handshake control, C-copy/C, read 0.53).
      const refs = [ref, ...(opts.spareRefs ?? [])]
      const others = rotated(targets.filter((x) => x !== ref), round)
      for (let i = 0; i < others.length; i++) {
        const t = others[i]
        const [o, r] = await Promise.all([one(t, 0), one(refs[i % refs.length], 1)])
        // Each pair's "other" CPU leaves out the other half of the pair.
        o.otherCpu = Math.max(0, o.otherCpu - r.serverCpu - r.loadCpu)
        r.otherCpu = Math.max(0, r.otherCpu - o.serverCpu - o.loadCpu)
        f.add(t.name, o)
        f.add(ref.name, r)
        f.against(t.name, o, r)
      }
      continue
    }
    const seen = new Map<string, Observation>()
    for (const t of rotated(targets, round)) {
      const o = await one(t, 0)
      seen.set(t.name, o)
      f.add(t.name, o)
    }
    const r = seen.get(opts.ref)
    if (r !== undefined) for (const [name, o] of seen) if (name !== opts.ref) f.against(name, o, r)
  }
  return f
}

export function noiseLine (f: Figures, unit: string, load: [string, string]): void {
  out(`Noise floor: per server CPU-second ${noiseText(f.noise('perCpu'))}; ${unit}/s ${noiseText(f.noise('rate'))}. Load average (1, 5, 15 min) before: ${load[0]}; after: ${load[1]}.`)
  out()
}

/** The table every rate measure prints: the primary figure first, each against `ref` when it ran. */
export function rateTable (f: Figures, targets: Target[], unit: string, opts: { latency: boolean, ref: string, op: string }): void {
  const { ref } = opts
  const vs = (figure: 'perCpu' | 'rate', name: string): string => f.has(ref) ? fmt(spread(f.ratios(name, ref, figure)), 2) : ''
  table([
    'target', `${unit} per server CPU-second`, `vs ${ref}`, `${unit}/s`, `vs ${ref}`,
    ...(opts.latency ? ['p50 ms', 'p99 ms'] : []), `user µs per ${opts.op}`, `system µs per ${opts.op}`, `helper threads µs per ${opts.op}`, 'server CPU', 'load CPU', 'other CPU'
  ], targets.map((t) => [
    t.name, fmt(f.perCpu.of(t.name)), t.name === ref ? '1.00' : vs('perCpu', t.name), fmt(f.rate.of(t.name)), t.name === ref ? '1.00' : vs('rate', t.name),
    ...(opts.latency ? [fmt(f.p50.of(t.name), 3), fmt(f.p99.of(t.name), 3)] : []),
    fmt(f.userUs.of(t.name), 1), fmt(f.systemUs.of(t.name), 1), fmt(f.helperUs.of(t.name), 2),
    percent(f.server.of(t.name)), percent(f.load.of(t.name)), percent(f.other.of(t.name))
  ]))
}
