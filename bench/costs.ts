/**
 * `npm run bench:costs`: what one round trip costs each target, counted rather than timed against a rate.
 * Every target runs at once, pinned like the per-core measures (servers on core 0, load on the others);
 * in each round, every target in turn serves exactly `--count` round trips after a warm-up, and the kernel's
 * counters of its process are read at the window's two marks: CPU in user space and in the kernel, page
 * faults, context switches; and its own count of garbage collections. With `--alloc`, one more pass per
 * target samples what it allocates per round trip, by call site (bench/heap-sampling.ts).
 *
 * Targets are those of bench/target.ts, plus A (or A-async) with parts of the message path switched off
 * (bench/ablate.ts): `A-no-used`, `A-no-keepalive`, `A-no-stats`, `A-no-clock`, `A-no-all`, or several
 * joined by `+` (`A-no-used+keepalive`). A part's share is what switching it off saves, against A.
 *
 *   npm run bench:costs
 *   npm run bench:costs -- --targets A,A-async,C,A-no-all --conns 50 --count 100000 --rounds 7 --alloc
 */
import { loadavg } from 'node:os'
import { targetOf } from './ablate'
import type { GcCount } from './gc-count'
import type { Allocations } from './heap-sampling'
import { type Loader, withLoader } from './loader'
import { cores, pin } from './pin'
import { cpuSeconds, procCounters, procDelta, type ProcCounters } from './proc'
import { startNodeTarget, type Target } from './servers'
import { spread, type Spread } from './spread'

const argv = process.argv.slice(2)
const arg = (flag: string, fallback: string): string => { const i = argv.indexOf(flag); return i === -1 ? fallback : argv[i + 1] }
const TARGETS = arg('--targets', 'A,A-async,C,C-copy,A-no-used,A-no-keepalive,A-no-stats,A-no-clock,A-no-all').split(',')
const CONNS = arg('--conns', '50').split(',').map(Number)
const COUNT = Number(arg('--count', '100000'))
const ROUNDS = Number(arg('--rounds', '7'))
const SIZE = Number(arg('--size', '0'))
const ALLOC = argv.includes('--alloc')
const out = (line = ''): void => { process.stdout.write(line + '\n') }

interface Sample extends ProcCounters { ns: number, gc: GcCount, newSpace: number }

/** One window of exactly `count` round trips on `conns` connections; the target's counters across it. */
async function window (loader: Loader, t: Target, conns: number, warmup: number, count: number): Promise<Sample> {
  const ask = t.ask as NonNullable<Target['ask']>
  let before: { counters: ProcCounters, ns: number } | null = null
  let sample: Sample | null = null
  const result = await loader.run({ cmd: 'exact', port: t.port, conns, warmup, count, localAddress: '127.0.0.2', size: SIZE }, (mark) => {
    void (async () => {
      if (mark === 'start') {
        await ask({ cmd: 'gc' })
        before = { counters: procCounters(t.pids()), ns: cpuSeconds(t.pids()) * 1e9 }
      } else if (before !== null) {
        const ns = cpuSeconds(t.pids()) * 1e9 - before.ns
        const counters = procDelta(before.counters, procCounters(t.pids()))
        const { gc, newSpace } = await ask<{ gc: GcCount, newSpace: number }>({ cmd: 'gc' })
        sample = { ...counters, ns, gc, newSpace }
      }
      loader.go()
    })()
  })
  if (result.failed > 0) throw new Error(`${t.name}: ${result.failed} failed (${result.firstError ?? ''})`)
  if (sample === null) throw new Error(`${t.name}: no window`)
  return sample
}

/** Bytes allocated per round trip, by site, over `count` round trips (sampling slows the target: no CPU figures). */
async function allocations (loader: Loader, t: Target, conns: number, count: number): Promise<Allocations> {
  const ask = t.ask as NonNullable<Target['ask']>
  let allocs: Allocations | null = null
  await loader.run({ cmd: 'exact', port: t.port, conns, warmup: count, count, localAddress: '127.0.0.2', size: SIZE }, (mark) => {
    void (async () => {
      if (mark === 'start') await ask({ cmd: 'alloc-start' })
      else allocs = (await ask<{ allocations: Allocations }>({ cmd: 'alloc-stop' })).allocations
      loader.go()
    })()
  })
  if (allocs === null) throw new Error(`${t.name}: no allocation profile`)
  return allocs
}

function rotated<T> (list: T[], round: number): T[] {
  const k = Math.floor(round / 2) % list.length
  const turned = [...list.slice(k), ...list.slice(0, k)]
  return round % 2 === 0 ? turned : turned.reverse()
}

const f = (s: Spread, digits: number): string => !Number.isFinite(s.median) ? 'n/a' : s.min === s.max ? s.median.toFixed(digits) : `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`

function loadAverage (): string {
  return loadavg().map((x) => x.toFixed(2)).join(', ')
}

async function measure (loader: Loader, targets: Target[], conns: number): Promise<void> {
  const samples = new Map<string, Sample[]>(targets.map((t) => [t.name, []]))
  const load0 = loadAverage()
  // One warm-up pass: V8 optimises each target's path before anything counts.
  for (const t of targets) await window(loader, t, conns, COUNT / 2, 1000)
  for (let round = 0; round < ROUNDS; round++) {
    for (const t of rotated(targets, round)) samples.get(t.name)?.push(await window(loader, t, conns, 2000, COUNT))
  }
  const per = (name: string, pick: (s: Sample) => number, scale: number): Spread => spread((samples.get(name) ?? []).map((s) => pick(s) / COUNT * scale))
  // Ratios round by round, as run.ts takes them: the reference's CPU over the target's (work per CPU-second).
  const vs = (name: string, ref: string): Spread => {
    const a = samples.get(name) ?? []
    const b = samples.get(ref) ?? []
    return spread(a.map((s, i) => b[i] === undefined ? NaN : b[i].ns / s.ns))
  }
  out(`## ${conns} connection${conns === 1 ? '' : 's'}, ${COUNT.toLocaleString('en-US')} round trips a window, ${ROUNDS} rounds`)
  out()
  out(`Load average before: ${load0}; after: ${loadAverage()} (2 cores).`)
  out()
  out('| target | CPU µs per round trip | user µs | system µs | C/target per CPU-second | A/target | minor faults per 1k | voluntary ctx switches per 1k | involuntary per 1k | minor GCs per 100k | GC ms per 100k | new space MB |')
  out('|---|---|---|---|---|---|---|---|---|---|---|---|')
  for (const t of targets) {
    const n = t.name
    out(`| ${n} | ${f(per(n, (s) => s.ns, 1e-3), 2)} | ${f(per(n, (s) => s.user, 1e6), 2)} | ${f(per(n, (s) => s.system, 1e6), 2)} | ${samples.has('C') ? f(vs('C', n), 3) : ''} | ${samples.has('A') ? f(vs('A', n), 3) : ''} | ${f(per(n, (s) => s.minorFaults, 1000), 2)} | ${f(per(n, (s) => s.voluntary, 1000), 1)} | ${f(per(n, (s) => s.involuntary, 1000), 1)} | ${f(per(n, (s) => s.gc.minor, 1e5), 1)} | ${f(per(n, (s) => s.gc.ms, 1e5), 1)} | ${f(spread((samples.get(n) ?? []).map((s) => s.newSpace / 2 ** 20)), 1)} |`)
  }
  out()
  if (!ALLOC) return
  out(`Allocation per round trip (sampling heap profiler, young and old garbage counted), ${(COUNT / 5).toLocaleString('en-US')} round trips:`)
  out()
  for (const t of targets) {
    const a = await allocations(loader, t, conns, COUNT / 5)
    const n = COUNT / 5
    const lib = a.sites.filter(([site]) => site.includes(' lib/'))
    out(`- **${t.name}**: ${Math.round(a.bytes / n).toLocaleString('en-US')} bytes; ${a.sites.slice(0, 8).map(([site, b]) => `${site} ${Math.round(b / n)}`).join('; ')}; this plugin's own sites: ${lib.map(([site, b]) => `${site} ${Math.round(b / n)}`).join('; ')}`)
  }
  out()
}

withLoader('bench-costs-', async (loader) => {
  const targets: Target[] = []
  try {
    for (const name of TARGETS) {
      const { kind, env } = targetOf(name)
      targets.push(await startNodeTarget(kind, name, { ...env, BENCH_GC: '1' }))
    }
    const where = cores(!argv.includes('--no-pin'))
    if (where.pinned) {
      for (const t of targets) pin(t.pids(), where.server)
      pin([loader.pid, process.pid], where.load)
    }
    out(`# Costs per round trip — ${new Date().toISOString()}, Node ${process.version}, ${SIZE === 0 ? 'bare OPTIONS' : `${SIZE}-byte messages`}, ${where.pinned ? `servers on core ${where.server}, load on ${where.load}` : `not pinned (${where.why ?? ''})`}`)
    out()
    out('CPU from the scheduler (every thread, ns); user and system from /proc/<pid>/stat (10 ms ticks); faults and')
    out('context switches from /proc; GCs from perf_hooks inside the target. Median (min–max) of the rounds.')
    out()
    for (const conns of CONNS) await measure(loader, targets, conns)
  } finally {
    for (const t of targets) await t.stop()
  }
})
