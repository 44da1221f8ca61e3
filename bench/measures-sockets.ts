/**
 * The rate measures of `npm run bench`: round trips and handshakes on one core, message sizes, and round
 * trips on the whole machine. Each prints its table and noise floor and files its goals.
 */
import { availableParallelism } from 'node:os'
import type { Loader } from './loader'
import type { LoadCommand } from './load'
import { CONTROL, freshTargets, inRounds, noiseLine, observe, place, rateTable, type Figures, type RoundOptions } from './observe'
import type { Params } from './params'
import type { Cores } from './pin'
import { loadAverage, out, plural, type Report } from './report'
import type { Target } from './servers'
import { spread } from './spread'
import { fmt } from './verdict'

export interface Bench {
  P: Params
  cores: Cores
  report: Report
  /** Every target started; each measure picks those it compares. */
  targets: Target[]
  loaders: Loader[]
  /** Per-core rounds paired with the reference (the default), or alternated (`--alternated`). */
  paired: boolean
  /** More processes of the reference (C), so that each pair of a round has a fresh one (observe.ts `inRounds`). */
  spareRefs: Target[]
}

/** What per-core ratios are taken against: raw ws. */
const REF = 'C'

const only = (targets: Target[], names: string[]): Target[] => targets.filter((t) => names.includes(t.name))
const ran = (f: Figures, ...names: string[]): boolean => names.every((n) => f.has(n))
/** Each of the two load slots of a paired round has its own source address. */
const SOURCE = ['127.0.0.2', '127.0.0.3'] as const
const warn = (line: string): void => { out(line) }

/** Paired rounds against REF, with fresh processes (the spare references' too) before each round. */
const roundOptions = (b: Bench, targets: Target[]): RoundOptions => ({
  paired: b.paired,
  ref: REF,
  spareRefs: b.spareRefs,
  fresh: b.P.freshProcesses ? async () => { await freshTargets(b.cores, [...targets, ...(b.paired ? b.spareRefs : [])], b.loaders) } : undefined
})

const rtt = (t: Target, conns: number, localAddress: string, p: { seconds: number, warmupMs: number }, size?: number): LoadCommand =>
  ({ cmd: 'rtt', port: t.port, conns, warmupMs: p.warmupMs, seconds: p.seconds, localAddress, size })

export async function measureRoundTrips (b: Bench): Promise<void> {
  const p = b.P.rtt
  place(b.cores, 'core', b.targets, b.loaders)
  for (const conns of p.conns) {
    // Kamailio at 50 connections only: the A/K goal is there, and the rounds are long.
    const targets = only(b.targets, ['A', 'A-async', 'B', 'C', 'C-copy', ...(conns === 50 ? ['K'] : []), ...b.targets.map((t) => t.name).filter((n) => n.includes('-no-') || n.startsWith('C-beside-'))])
    const load0 = loadAverage()
    const f = await inRounds(targets, p.rounds, async (t, slot) => await observe([b.loaders[slot]], t, [rtt(t, conns, SOURCE[slot], p)], warn), roundOptions(b, targets))
    out(`### Round trips, ${plural(conns, 'connection')}, one core (one OPTIONS in flight on each), ${plural(p.rounds, 'round')} of ${p.seconds} s`)
    out()
    noiseLine(f, 'round trips', [load0, loadAverage()])
    rateTable(f, targets, 'round trips', { latency: true, ref: REF, op: 'round trip' })
    const at = `at ${plural(conns, 'connection')}`
    const perCpu = f.noise('perCpu')
    b.report.controlPool.push(...f.ratios(...CONTROL))
    if (ran(f, 'A', 'C')) b.report.goal(`A/C round trips per server CPU-second ${at}`, f.ratios('A', 'C'), perCpu, '>=', 0.95)
    if (ran(f, 'A-async', 'C')) b.report.goal(`A-async/C round trips per server CPU-second ${at} (an async hook: the ordered queue)`, f.ratios('A-async', 'C'), perCpu, '>=', 0.92)
    if (ran(f, 'A', 'B')) b.report.goal(`A/B round trips per server CPU-second ${at}`, f.ratios('A', 'B'), perCpu, '>=', 1.00)
    if (ran(f, 'A', 'K')) b.report.goal(`A/K round trips per server CPU-second ${at}, one core each`, f.ratios('A', 'K'), perCpu, '>=', 2.0)
  }
}

export async function measureSizes (b: Bench, bufferutil: boolean): Promise<void> {
  const p = b.P.sizes
  const targets = only(b.targets, ['A', 'A-js', 'C', 'C-copy'])
  place(b.cores, 'core', b.targets, b.loaders)
  out(`### Message sizes, ${plural(p.conns, 'connection')}, one core (an OPTIONS with a body, answered by a bare 200 OK), ${plural(p.rounds, 'round')} of ${p.seconds} s`)
  out()
  out('A-js is A with ws\'s native `bufferutil` turned off (WS_NO_BUFFER_UTIL=1): ws then unmasks every frame')
  out(`in JavaScript, a byte at a time. bufferutil is ${bufferutil ? 'installed, so A and C use it' : '**not installed**: A and A-js are the same here'}.`)
  out()
  for (const size of p.sizes) {
    const load0 = loadAverage()
    const f = await inRounds(targets, p.rounds, async (t, slot) => await observe([b.loaders[slot]], t, [rtt(t, p.conns, SOURCE[slot], p, size)], warn), roundOptions(b, targets))
    out(`#### ${size === 0 ? 'a bare OPTIONS (about 245 bytes)' : plural(size, 'byte')}`)
    out()
    noiseLine(f, 'messages', [load0, loadAverage()])
    rateTable(f, targets, 'messages', { latency: true, ref: REF, op: 'message' })
    if (ran(f, 'A', 'A-js')) out(`bufferutil: A/A-js per server CPU-second ${fmt(spread(f.ratios('A', 'A-js')), 2)}.`)
    out()
  }
}

export async function measureHandshakes (b: Bench): Promise<void> {
  const p = b.P.handshakes
  const targets = only(b.targets, ['A', 'B', 'C', 'C-copy', 'K'])
  place(b.cores, 'core', b.targets, b.loaders)
  // 20 source addresses a slot: the load side's TIME_WAIT sockets stay far from the ephemeral port range's end.
  const localAddresses = [0, 1].map((slot) => Array.from({ length: 20 }, (_, i) => `127.0.${slot}.${20 + i}`))
  const load0 = loadAverage()
  const f = await inRounds(targets, p.rounds, async (t, slot) => await observe([b.loaders[slot]], t, [
    { cmd: 'handshakes', port: t.port, concurrency: p.concurrency, seconds: p.seconds, localAddresses: localAddresses[slot], warmupMs: p.warmupMs }
  ], warn), {
    // The same processes all through, each warmed by one unrecorded window first: a fresh process's
    // handshake path is still being compiled after its warm-up (on a core it shares), which charged A,
    // with the most JavaScript on that path, up to 1.6× the CPU a warmed A takes (bench:profile).
    paired: b.paired,
    ref: REF,
    warmFirst: true
  })
  out(`### Handshakes, one core (open with sub-protocol sip, then a clean close), concurrency ${p.concurrency}, ${plural(p.rounds, 'round')} of ${p.seconds} s`)
  out()
  out('A runs two `xhttp:request` hooks on each, one sync and one async.')
  out()
  noiseLine(f, 'handshakes', [load0, loadAverage()])
  rateTable(f, targets, 'handshakes', { latency: false, ref: REF, op: 'handshake' })
  const perCpu = f.noise('perCpu')
  b.report.controlPool.push(...f.ratios(...CONTROL))
  if (ran(f, 'A', 'C')) b.report.goal('A/C handshakes per server CPU-second, with a sync and an async xhttp:request hook', f.ratios('A', 'C'), perCpu, '>=', 0.95)
  if (ran(f, 'A', 'K')) b.report.goal('A/K handshakes per server CPU-second, one core each', f.ratios('A', 'K'), perCpu, '>=', 1.0)
}

/** A1 (A), A2 and K with both cores each, the load generators too: what the whole machine serves. */
export async function measureMachine (b: Bench): Promise<void> {
  const p = b.P.machine
  const targets = only(b.targets, ['A', 'A2', 'C', 'C-copy', 'K'])
  place(b.cores, 'machine', b.targets, b.loaders)
  const pair = b.loaders.slice(0, 2)
  for (const conns of p.conns) {
    const load0 = loadAverage()
    // Alternated: a whole-machine figure cannot share the machine with another target.
    const f = await inRounds(targets, p.rounds, async (t) => await observe(pair, t, pair.map((_, i) =>
      rtt(t, Math.ceil(conns / pair.length), `127.0.0.${3 + i}`, p)), warn), { paired: false, ref: 'C' })
    out(`### Round trips, ${plural(conns, 'connection')}, whole machine (${availableParallelism()} cores for servers and load alike; ${pair.length} load generators), ${plural(p.rounds, 'round')} of ${p.seconds} s`)
    out()
    out('A is one process (A1); A2 is two node:cluster workers on one port; K is Kamailio with 2 TCP workers.')
    out()
    noiseLine(f, 'round trips', [load0, loadAverage()])
    rateTable(f, targets, 'round trips', { latency: false, ref: 'C', op: 'round trip' })
    const at = `at ${plural(conns, 'connection')}`
    if (conns === 50 && ran(f, 'A2', 'K')) b.report.goal(`A2/K round trips/s ${at}, whole machine`, f.ratios('A2', 'K', 'rate'), f.noise('rate'), '>=', 1.5)
    if (ran(f, 'A2', 'A')) b.report.goal(`A2/A1 round trips per server CPU-second ${at}, whole machine`, f.ratios('A2', 'A'), f.noise('perCpu'), '>=', 0.90)
  }
  place(b.cores, 'core', b.targets, b.loaders)
}
