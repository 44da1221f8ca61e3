/**
 * `npm run bench:perf`: where one target's CPU per round trip goes beyond another's, with the tools that see
 * the kernel and V8's own code as well as JavaScript. The targets run at once, every one pinned to the server
 * core (load on the others), fresh processes each round, warmed before the window; per round and target:
 * CPU per round trip of the main thread and of the other threads (V8's compiler and GC helpers), from the
 * scheduler (`/proc/<pid>/task/<tid>/schedstat`), and each target's CPU per round trip against C's.
 *
 * With `--record`, `perf record` samples each target's process (user and kernel, 4,999 Hz, the JIT's code
 * named through `--perf-basic-prof`) during the last round, and every symbol's share becomes µs per round
 * trip, printed as the difference to C's. With `--stat`, `perf stat` counts system calls, context switches,
 * wake-ups and softirqs per round trip instead. Both need `perf` (Debian linux-perf); neither needs hardware
 * counters (this VM has none).
 *
 *   npm run bench:perf -- --targets A,A-no-all,B,C --rounds 4 --warmup 2000 --seconds 4
 *   npm run bench:perf -- --targets A,C --rounds 2 --seconds 8 --record --top 40
 *   npm run bench:perf -- --targets A,C --rounds 2 --seconds 8 --record --callers _raw_spin_unlock_irqrestore
 *   npm run bench:perf -- --targets A,C --rounds 2 --seconds 8 --stat
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { targetOf } from './ablate'
import { Loader } from './loader'
import { freshTargets } from './observe'
import { cores as coresOf } from './pin'
import { cpuSeconds, helperCpuSeconds } from './proc'
import { startNodeTarget, type Target } from './servers'

const argv = process.argv.slice(2)
const arg = (flag: string, fallback: string): string => { const i = argv.indexOf(flag); return i === -1 ? fallback : argv[i + 1] }
const NAMES = arg('--targets', 'A,C').split(',')
const ROUNDS = Number(arg('--rounds', '4'))
const WARMUP_MS = Number(arg('--warmup', '2000'))
const SECONDS = Number(arg('--seconds', '4'))
const CONNS = Number(arg('--conns', '50'))
const TOP = Number(arg('--top', '30'))
const RECORD = argv.includes('--record')
const STAT = argv.includes('--stat')
/** With --record: also the call chains into this symbol (perf record -g), for each target. */
const CALLERS = arg('--callers', '')
const STAT_EVENTS = 'syscalls:sys_enter_read,syscalls:sys_enter_writev,syscalls:sys_enter_write,syscalls:sys_enter_epoll_pwait,sched:sched_switch,sched:sched_wakeup,irq:softirq_entry'
const out = (line = ''): void => { process.stdout.write(line + '\n') }
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const range = (xs: number[], digits: number): string => `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`

interface Sample { mainUs: number, helperUs: number, perRt: number }

/** `perf report` of one recording: each symbol's share of the samples. */
function symbolShares (file: string): Map<string, number> {
  const report = spawnSync('perf', ['report', '-i', file, '--stdio', '--sort', 'sym', '--percent-limit', '0.02'], { encoding: 'utf8', maxBuffer: 64 << 20 })
  const shares = new Map<string, number>()
  for (const line of report.stdout.split('\n')) {
    const m = /^\s+([\d.]+)%\s+\[.\]\s+(.*?)\s*$/.exec(line)
    // JIT code is named with its address in the perf map; the name and source position are what compare.
    if (m !== null) { const name = m[2].replace(/0x[0-9a-f]+/g, ''); shares.set(name, (shares.get(name) ?? 0) + Number(m[1]) / 100) }
  }
  return shares
}

/** `perf stat` counts of one target, per round trip. */
function statCounts (text: string, roundTrips: number): Array<[string, number]> {
  const counts: Array<[string, number]> = []
  for (const line of text.split('\n')) {
    const m = /^\s*([\d,]+)\s+(\S+:\S+)/.exec(line)
    if (m !== null) counts.push([m[2], Number(m[1].replace(/,/g, '')) / roundTrips])
  }
  return counts
}

async function main (): Promise<void> {
  if (!NAMES.includes('C')) throw new Error('--targets must include C, the reference')
  if (RECORD || STAT) {
    if (spawnSync('perf', ['--version']).status !== 0) throw new Error('perf is not installed (Debian: linux-perf)')
    // V8 names its JIT code in /tmp/perf-<pid>.map; the log it then also keeps goes nowhere.
    if (RECORD) process.env.BENCH_TARGET_FLAGS = `${process.env.BENCH_TARGET_FLAGS ?? ''} --perf-basic-prof --no-logfile-per-isolate --logfile=/dev/null`
  }
  const dir = await mkdtemp(join(tmpdir(), 'bench-perf-'))
  const cores = coresOf(true)
  const targets: Target[] = []
  for (const name of NAMES) { const t = targetOf(name); targets.push(await startNodeTarget(t.kind, name, t.env)) }
  const loaders = await Promise.all(targets.map(async () => await Loader.start()))
  const samples = new Map<string, Sample[]>(NAMES.map((n) => [n, []]))
  const last = new Map<string, { roundTrips: number, mainUs: number, helperUs: number }>()
  /** Every target process of the run: each leaves a perf map behind when recorded. */
  const seen: number[] = []
  out(`# Paired CPU per round trip: ${NAMES.join(', ')} at once on the server core, ${CONNS} connections, ${WARMUP_MS} ms warm-up, ${SECONDS} s windows, ${ROUNDS} rounds${cores.pinned ? '' : ' (not pinned: fewer than 2 cores or no taskset)'}`)
  out()
  try {
    for (let round = 0; round < ROUNDS; round++) {
      await freshTargets(cores, targets, loaders)
      for (const t of targets) seen.push(...t.pids())
      const perfs: ChildProcess[] = []
      const at: Array<{ cpu: number, helpers: number }> = []
      const delta: Array<{ cpu: number, helpers: number }> = []
      let starts = 0
      let ends = 0
      const onMark = (mark: 'start' | 'end'): void => {
        if (mark === 'start' && starts++ === 0) {
          targets.forEach((t, i) => { at[i] = { cpu: cpuSeconds(t.pids()), helpers: helperCpuSeconds(t.pids()) } })
          if (round === ROUNDS - 1 && (RECORD || STAT)) {
            // Over the window less a second, so it has ended before the window does.
            for (const t of targets) {
              const args = RECORD
                ? ['record', ...(CALLERS === '' ? [] : ['-g']), '-F', '4999', '-e', 'cpu-clock', '-o', join(dir, `${t.name}.data`)]
                : ['stat', '-e', STAT_EVENTS, '-o', join(dir, `${t.name}.stat`)]
              perfs.push(spawn('perf', [...args, '-p', String(t.pids()[0]), '--', 'sleep', String(SECONDS - 1)], { stdio: 'ignore' }))
            }
          }
        }
        if (mark === 'end' && ++ends === targets.length) {
          targets.forEach((t, i) => { delta[i] = { cpu: cpuSeconds(t.pids()) - at[i].cpu, helpers: helperCpuSeconds(t.pids()) - at[i].helpers } })
        }
      }
      const results = await Promise.all(targets.map(async (t, i) => await loaders[i].run({ cmd: 'rtt', port: t.port, conns: CONNS, warmupMs: WARMUP_MS, seconds: SECONDS, localAddress: `127.0.0.${40 + i}` }, onMark)))
      await Promise.all(perfs.map(async (p) => { if (p.exitCode === null) await once(p, 'exit') }))
      const perRt = targets.map((_, i) => delta[i].cpu * 1e6 / results[i].done)
      const ref = perRt[NAMES.indexOf('C')]
      targets.forEach((t, i) => {
        const { done, failed } = results[i]
        if (failed > 0) out(`  ! ${t.name}: ${failed} failed`)
        const helperUs = delta[i].helpers * 1e6 / done
        samples.get(t.name)?.push({ mainUs: perRt[i] - helperUs, helperUs, perRt: ref / perRt[i] })
        // perf ran for the window less a second: its counts are of about that share of the round trips.
        last.set(t.name, { roundTrips: done * (SECONDS - 1) / SECONDS, mainUs: perRt[i] - helperUs, helperUs })
      })
    }
    out('| target | main thread µs per round trip | helper threads µs per round trip | C/target CPU per round trip (target/C per CPU-second) |')
    out('|---|---|---|---|')
    for (const [name, s] of samples) out(`| ${name} | ${range(s.map((x) => x.mainUs), 2)} | ${range(s.map((x) => x.helperUs), 2)} | ${range(s.map((x) => x.perRt), 3)} |`)
    out()
    if (RECORD) {
      const refShares = symbolShares(join(dir, 'C.data'))
      const refUs = (last.get('C')?.mainUs ?? 0) + (last.get('C')?.helperUs ?? 0)
      for (const name of NAMES.filter((n) => n !== 'C')) {
        const shares = symbolShares(join(dir, `${name}.data`))
        const us = (last.get(name)?.mainUs ?? 0) + (last.get(name)?.helperUs ?? 0)
        const symbols = new Set([...shares.keys(), ...refShares.keys()])
        const rows = [...symbols].map((s) => ({ s, a: (shares.get(s) ?? 0) * us, c: (refShares.get(s) ?? 0) * refUs })).sort((x, y) => (y.a - y.c) - (x.a - x.c))
        out(`## ${name} against C, last round: ${us.toFixed(2)} against ${refUs.toFixed(2)} µs per round trip; the ${TOP} symbols that cost ${name} most beyond C`)
        out()
        out(`| symbol | ${name} − C µs | ${name} µs | C µs |`)
        out('|---|---|---|---|')
        for (const r of rows.slice(0, TOP)) out(`| \`${r.s.slice(0, 100).replace(/\|/g, '\\|')}\` | ${(r.a - r.c).toFixed(3)} | ${r.a.toFixed(3)} | ${r.c.toFixed(3)} |`)
        out()
      }
      if (CALLERS !== '') {
        for (const name of NAMES) {
          const report = spawnSync('perf', ['report', '-i', join(dir, `${name}.data`), '--stdio', '--no-children', '-S', CALLERS, '-G', '--percent-limit', '0.5'], { encoding: 'utf8', maxBuffer: 64 << 20 })
          out(`## ${name}: call chains into ${CALLERS}`)
          out()
          out('```')
          out(report.stdout.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#')).join('\n'))
          out('```')
          out()
        }
      }
    }
    if (STAT) {
      out('## perf stat, last round: per round trip')
      out()
      const per = await Promise.all(NAMES.map(async (n) => statCounts(await readFile(join(dir, `${n}.stat`), 'utf8'), last.get(n)?.roundTrips ?? 1)))
      out(`| event | ${NAMES.join(' | ')} |`)
      out(`|---|${NAMES.map(() => '---').join('|')}|`)
      for (let i = 0; i < per[0].length; i++) out(`| ${per[0][i][0]} | ${per.map((p) => (p[i]?.[1] ?? NaN).toFixed(4)).join(' | ')} |`)
      out()
    }
  } finally {
    for (const l of loaders) l.stop()
    for (const t of targets) await t.stop()
    await rm(dir, { recursive: true, force: true })
    if (RECORD) for (const pid of seen) await rm(`/tmp/perf-${pid}.map`, { force: true })
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${String((err as Error).stack ?? err)}\n`)
  process.exitCode = 1
})
