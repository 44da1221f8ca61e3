/**
 * `npm run bench`: this plugin (A) side by side with plain fastify + @fastify/websocket (B), raw ws on
 * node:http (C) and Kamailio 5.6 (K, when installed), in one run. Every target and every load generator is
 * its own process. Rounds are interleaved (each round visits every target, in a rotated order) and each
 * figure is the median of the rounds with min–max; ratios are taken per round, then their median.
 *
 *   npm run bench                    the full run (about 7 minutes on 2 cores)
 *   npm run bench -- --smoke         tiny numbers, to check every target and measure works (test/bench-smoke)
 *   npm run bench -- --only rtt,lwsc  some measures only: rtt, handshakes, idle, registry, lwsc
 *   npm run bench -- --targets A,K    some targets only (B is the reference for ratios; lwsc needs A and C)
 *                                    targets: A, A-async, B, B-copy, C, K
 *
 * See bench/README.md for the method and the latest table.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { startKamailio, type Kamailio } from '../test/helpers/kamailio'
import { freePort } from '../test/helpers/lwsc'
import type { LoadCommand, LoadResult } from './load'
import { cpuSeconds, establishedTo, machineBusySeconds, processTree } from './proc'
import { registryBench } from './registry'
import { spread, type Spread } from './spread'
import type { TargetKind, TargetMemory, TargetReply } from './target'

/** B-copy is a second, identical B: how far B-copy/B strays from 1 is the run's noise floor. */
type Name = TargetKind | 'B-copy' | 'K'

const argv = process.argv.slice(2)
const SMOKE = argv.includes('--smoke')
const onlyArg = argv.indexOf('--only')
const ONLY = onlyArg === -1 ? null : new Set(argv[onlyArg + 1].split(','))
const wants = (measure: string): boolean => ONLY === null || ONLY.has(measure)
const targetsArg = argv.indexOf('--targets')
const TARGETS = new Set(targetsArg === -1 ? ['A', 'A-async', 'B', 'B-copy', 'C', 'K'] : argv[targetsArg + 1].split(','))

const P = SMOKE
  ? { rounds: 1, idleRounds: 1, rttConns: [1, 5], warmupMs: 50, seconds: 0.3, handshakeConcurrency: 4, idle: 200, loaders: 2, registrySizes: [1_000], registryRounds: 5, lwscSeconds: 0.3, httpConcurrency: 2 }
  // 5 rounds where a figure is a rate (this machine is shared: single rounds swing by 10–20%); 3 for memory,
  // which swings less and costs most (15,000 connections opened and closed per target and round).
  : { rounds: 5, idleRounds: 3, rttConns: [1, 50, 500], warmupMs: 500, seconds: 2.5, handshakeConcurrency: 20, idle: 15_000, loaders: 4, registrySizes: [1_000, 100_000, 1_000_000], registryRounds: 101, lwscSeconds: 2, httpConcurrency: 8 }

const HERE = __dirname
const TSX = ['--import', 'tsx']
const out = (line = ''): void => { process.stdout.write(line + '\n') }

// ---- processes --------------------------------------------------------------------------------------

interface Target { name: Name, port: number, pids: () => number[], memory: () => Promise<number>, settleMs: number, stop: () => Promise<void> }

async function startNodeTarget (kind: TargetKind, name: Name = kind): Promise<Target> {
  const child = fork(join(HERE, 'target.ts'), [kind], { execArgv: [...TSX, '--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const [first] = await once(child, 'message') as [TargetReply]
  if (!('port' in first)) throw new Error(`target ${kind} did not start`)
  return {
    name,
    port: first.port,
    pids: () => [child.pid ?? 0],
    settleMs: 0,
    memory: async () => {
      child.send({ cmd: 'mem' })
      const [reply] = await once(child, 'message') as [{ mem: TargetMemory }]
      return reply.mem.rss
    },
    stop: async () => { child.kill(); if (child.exitCode === null) await once(child, 'exit') }
  }
}

async function startKamailioTarget (): Promise<Target | string> {
  let k: Kamailio
  try {
    // 2 TCP workers for 2 cores; shared memory sized for measure 3 (about 83 KB a connection, and a
    // round's connections are freed only 5 s after they close).
    k = await startKamailio(join(HERE, 'kamailio.cfg'), await freePort(), { sharedMb: SMOKE ? 256 : 4096, privateMb: 16, tcpWorkers: 2 })
  } catch (err) {
    return (err as Error).message.split('\n')[0]
  }
  const port = k.port
  return { name: 'K', port, pids: () => processTree(k.pid), memory: async () => await kamailioSharedMemory(port), settleMs: 6000, stop: k.stop }
}

/**
 * Kamailio keeps connections in its shared memory, whose pages stay resident once touched, so its RSS
 * says nothing about connections open now; its own count of shared memory in use (`core.shmmem`,
 * real_used: allocations plus allocator overhead) does.
 */
async function kamailioSharedMemory (port: number): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${port}/RPC`, { method: 'POST', body: JSON.stringify({ jsonrpc: '2.0', method: 'core.shmmem', id: 1 }) })
  const body = await response.json() as { result?: { real_used?: number } }
  if (body.result?.real_used === undefined) throw new Error(`core.shmmem: unexpected answer ${JSON.stringify(body)}`)
  return body.result.real_used
}

class Loader {
  private constructor (private readonly child: ChildProcess) {}

  static async start (): Promise<Loader> {
    const child = fork(join(HERE, 'load.ts'), [], { execArgv: TSX, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    await once(child, 'message')
    return new Loader(child)
  }

  /** Runs one command; `onStart` is called when the measured window opens. */
  async run (command: LoadCommand, onStart?: () => void): Promise<LoadResult> {
    return await new Promise((resolve, reject) => {
      const onMessage = (m: { mark?: string, result?: LoadResult, error?: string }): void => {
        if (m.mark === 'start') { onStart?.(); return }
        this.child.off('message', onMessage)
        if (m.result !== undefined) resolve(m.result)
        else reject(new Error(m.error))
      }
      this.child.on('message', onMessage)
      this.child.send(command)
    })
  }

  stop (): void { this.child.kill() }
}

/** One load command against one target, with the target's CPU use over the same window. */
async function measured (loader: Loader, target: Target, command: LoadCommand): Promise<LoadResult & { serverCpu: number, machineCpu: number }> {
  let cpu0 = 0
  let busy0 = 0
  let t0 = 0n
  const result = await loader.run(command, () => { cpu0 = cpuSeconds(target.pids()); busy0 = machineBusySeconds(); t0 = process.hrtime.bigint() })
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  if (result.failed > 0) out(`  ! ${target.name} ${command.cmd}: ${result.failed} failed (${result.firstError ?? ''})`)
  return { ...result, serverCpu: (cpuSeconds(target.pids()) - cpu0) / seconds, machineCpu: (machineBusySeconds() - busy0) / seconds }
}

// ---- statistics -------------------------------------------------------------------------------------

function fmt (s: Spread, digits = 0, unit = ''): string {
  if (!Number.isFinite(s.median)) return 'n/a'
  const f = (x: number): string => x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
  return s.min === s.max ? `${f(s.median)}${unit}` : `${f(s.median)}${unit} (${f(s.min)}–${f(s.max)})`
}

/** Per-round samples of one figure for each target. */
type Samples = Map<Name, number[]>

function push (samples: Samples, name: Name, value: number): void {
  const list = samples.get(name) ?? []
  list.push(value)
  samples.set(name, list)
}

/** Ratio of two targets, taken round by round (the same round shares the machine's state). */
function ratio (samples: Samples, a: Name, b: Name): Spread {
  const x = samples.get(a) ?? []
  const y = samples.get(b) ?? []
  return spread(x.map((v, i) => v / y[i]).filter((r) => Number.isFinite(r)))
}

const percent = (s: Spread): string => fmt({ median: s.median * 100, min: s.min * 100, max: s.max * 100 }, 0, '%')

/**
 * Where the CPU went in a window, as % of one core: the target's processes, the load generator, and the
 * whole machine (200% = both cores busy, so neither side could have gone faster).
 */
class CpuColumns {
  static readonly header = ['server CPU', 'load CPU', 'machine CPU']
  private readonly server: Samples = new Map()
  private readonly load: Samples = new Map()
  private readonly machine: Samples = new Map()
  add (name: Name, r: { serverCpu: number, cpu: number, machineCpu: number }): void {
    push(this.server, name, r.serverCpu)
    push(this.load, name, r.cpu)
    push(this.machine, name, r.machineCpu)
  }

  row (name: Name): string[] {
    return [this.server, this.load, this.machine].map((s) => percent(spread(s.get(name) ?? [])))
  }
}

interface Goal { text: string, value: Spread, pass: (median: number) => boolean, shown: string, noise?: Spread }
const goals: Goal[] = []

function goal (text: string, value: Spread, pass: (median: number) => boolean, digits = 2, noise?: Spread): void {
  goals.push({ text, value, pass, shown: fmt(value, digits), noise })
}

/** How far from 1 an identical copy's ratio went in this run: a ratio closer to 1 than this proves nothing. */
function noiseWidth (noise: Spread): number {
  return Math.max(Math.abs(noise.min - 1), Math.abs(noise.max - 1))
}

/** pass / miss, or "within noise" when a miss is no further from 1 than the run's own noise floor. */
function verdict (g: Goal): string {
  if (g.pass(g.value.median)) return 'pass'
  if (g.noise !== undefined && Math.abs(g.value.median - 1) <= noiseWidth(g.noise)) return 'within noise'
  return '**miss**'
}

function table (header: string[], rows: string[][]): void {
  out(`| ${header.join(' | ')} |`)
  out(`|${header.map(() => '---').join('|')}|`)
  for (const row of rows) out(`| ${row.join(' | ')} |`)
  out()
}

/** Each round visits every target once, starting one further along, so no target always goes first. */
function rotated<T> (list: T[], round: number): T[] {
  const k = round % list.length
  return [...list.slice(k), ...list.slice(0, k)]
}

// ---- measures ---------------------------------------------------------------------------------------

async function measureRoundTrips (targets: Target[], loader: Loader): Promise<void> {
  for (const conns of P.rttConns) {
    const rate: Samples = new Map()
    const p50: Samples = new Map()
    const p99: Samples = new Map()
    const perCpu: Samples = new Map()
    const cpu = new CpuColumns()
    for (let round = 0; round < P.rounds; round++) {
      for (const t of rotated(targets, round)) {
        const r = await measured(loader, t, { cmd: 'rtt', port: t.port, conns, warmupMs: P.warmupMs, seconds: P.seconds, localAddress: '127.0.0.2' })
        push(rate, t.name, r.done / r.seconds)
        push(p50, t.name, r.p50 ?? NaN)
        push(p99, t.name, r.p99 ?? NaN)
        push(perCpu, t.name, r.done / r.seconds / r.serverCpu)
        cpu.add(t.name, r)
      }
    }
    out(`### Round trips, ${conns} connection${conns === 1 ? '' : 's'} (one OPTIONS in flight on each)`)
    out()
    const noise = rate.has('B-copy') ? ratio(rate, 'B-copy', 'B') : undefined
    if (noise !== undefined) {
      out(`Noise floor: B-copy/B ${fmt(noise, 2)} (an identical server; ratios within ±${(noiseWidth(noise) * 100).toFixed(0)}% of 1 prove nothing).`)
      out()
    }
    table(['target', 'round trips/s', 'vs B', 'p50 ms', 'p99 ms', 'per server CPU-second', ...CpuColumns.header], targets.map((t) => [
      t.name, fmt(spread(rate.get(t.name) ?? [])), fmt(ratio(rate, t.name, 'B'), 2),
      fmt(spread(p50.get(t.name) ?? []), 3), fmt(spread(p99.get(t.name) ?? []), 3),
      fmt(spread(perCpu.get(t.name) ?? [])), ...cpu.row(t.name)
    ]))
    goal(`A/B round trips/s at ${conns} connection${conns === 1 ? '' : 's'} ≥ 0.95`, ratio(rate, 'A', 'B'), (m) => m >= 0.95, 2, noise)
    if (rate.has('A-async')) goal(`A-async/A round trips/s at ${conns} connection${conns === 1 ? '' : 's'} (the ordered queue) ≥ 0.95`, ratio(rate, 'A-async', 'A'), (m) => m >= 0.95, 2, noise)
    if (conns === 50 && rate.has('K')) goal('A/K round trips/s at 50 connections ≥ 1.5', ratio(rate, 'A', 'K'), (m) => m >= 1.5)
  }
}

async function measureHandshakes (targets: Target[], loader: Loader): Promise<void> {
  const rate: Samples = new Map()
  const cpu = new CpuColumns()
  // 20 source addresses: the load side's TIME_WAIT sockets stay far from the ephemeral port range's end.
  const localAddresses = Array.from({ length: 20 }, (_, i) => `127.0.0.${20 + i}`)
  for (let round = 0; round < P.rounds; round++) {
    for (const t of rotated(targets, round)) {
      const r = await measured(loader, t, { cmd: 'handshakes', port: t.port, concurrency: P.handshakeConcurrency, seconds: P.seconds, localAddresses })
      push(rate, t.name, r.done / r.seconds)
      cpu.add(t.name, r)
    }
  }
  out(`### Handshakes (open with sub-protocol sip, then a clean close), concurrency ${P.handshakeConcurrency}`)
  out()
  table(['target', 'handshakes/s', 'vs B', ...CpuColumns.header], targets.map((t) => [
    t.name, fmt(spread(rate.get(t.name) ?? [])), fmt(ratio(rate, t.name, 'B'), 2), ...cpu.row(t.name)
  ]))
  goal('A/B handshakes/s ≥ 0.90', ratio(rate, 'A', 'B'), (m) => m >= 0.90)
}

async function waitForConnections (port: number, expected: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs
  let n = establishedTo(port)
  while (n !== expected && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    n = establishedTo(port)
  }
  return n
}

/**
 * Memory once it has stopped falling for `t.settleMs`: Kamailio frees a closed WebSocket connection only
 * after its rm_delay_interval (5 s), so the previous round's connections must be gone before a baseline is
 * taken. A Node target's reading (after a full GC) is settled at once. Bounded: at most 40 reads.
 */
async function settledMemory (t: Target): Promise<number> {
  let low = await t.memory()
  let stableSince = Date.now()
  for (let i = 0; i < 40 && Date.now() - stableSince < t.settleMs; i++) {
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const now = await t.memory()
    if (now < low * 0.99) stableSince = Date.now()
    low = Math.min(low, now)
  }
  return low
}

async function measureIdle (targets: Target[], loaders: Loader[]): Promise<void> {
  const perConn: Samples = new Map()
  const openRate: Samples = new Map()
  const share = Math.floor(P.idle / loaders.length)
  const total = share * loaders.length
  // Source addresses are never reused within a run: the load side's sockets linger in TIME_WAIT after a
  // release, and a bound connect() then searches ever longer for a free port, so a later target would
  // fill more slowly than an earlier one.
  let nextAddress = 50
  for (let round = 0; round < P.idleRounds; round++) {
    for (const t of rotated(targets, round)) {
      const base = nextAddress
      nextAddress += loaders.length
      await waitForConnections(t.port, 0, 30_000)
      const before = await settledMemory(t)
      const t0 = Date.now()
      const opened = await Promise.all(loaders.map(async (l, i) =>
        await l.run({ cmd: 'hold', port: t.port, count: share, concurrency: 32, localAddress: `127.0.0.${base + i}` })))
      const ms = Date.now() - t0
      const open = opened.reduce((n, r) => n + r.done, 0)
      const seen = await waitForConnections(t.port, total, 10_000)
      const after = await t.memory()
      if (process.env.BENCH_DEBUG !== undefined) out(`  ${t.name}: ${before} -> ${after}`)
      if (open !== total || seen !== total) out(`  ! ${t.name}: ${open} of ${total} opened, ${seen} established (${opened.find((r) => r.firstError !== undefined)?.firstError ?? ''})`)
      push(perConn, t.name, (after - before) / open)
      push(openRate, t.name, open / (ms / 1000))
      await Promise.all(loaders.map(async (l) => await l.run({ cmd: 'release' })))
    }
  }
  out(`### Memory per idle connection, ${total.toLocaleString('en-US')} connections over ${loaders.length} load processes`)
  out()
  out('Server memory with the connections open minus the same before them, divided by their number. Node:')
  out('RSS after a full GC. Kamailio: shared memory in use (core.shmmem real_used), where it keeps connections.')
  out()
  table(['target', 'bytes per connection', 'vs B', 'opened/s while filling'], targets.map((t) => [
    t.name, fmt(spread(perConn.get(t.name) ?? [])), fmt(ratio(perConn, t.name, 'B'), 2), fmt(spread(openRate.get(t.name) ?? []))
  ]))
  goal('A/B memory per idle connection ≤ 1.2', ratio(perConn, 'A', 'B'), (m) => m <= 1.2)
}

function measureRegistry (): void {
  const rows = registryBench(P.registrySizes, P.registryRounds)
  out(`### wsDump and one keepalive tick, no sockets (median of ${P.registryRounds} rounds)`)
  out()
  const sizes = [...new Set(rows.map((r) => r.size))]
  table(['measure', ...sizes.map((n) => `${n.toLocaleString('en-US')} entries`)], [...new Set(rows.map((r) => r.measure))].map((m) => [
    m, ...sizes.map((n) => { const r = rows.find((x) => x.measure === m && x.size === n); return r === undefined ? '' : fmt(r.us, 1, ' µs') })
  ]))
  const largest = Math.max(...sizes)
  // The slowest median among the measures named `prefix` (the dump orders; the two kinds of tick).
  const worst = (prefix: string): Spread => {
    const us = Math.max(...rows.filter((r) => r.size === largest && r.measure.startsWith(prefix)).map((r) => r.us.median))
    return { median: us, min: us, max: us }
  }
  goal(`wsDump at ${largest.toLocaleString('en-US')} entries < 1 ms (µs, slowest order)`, worst('wsDump'), (m) => m < 1000, 1)
  goal(`keepalive tick at ${largest.toLocaleString('en-US')} entries < 1 ms (µs, slowest case)`, worst('keepalive tick'), (m) => m < 1000, 1)
}

async function measureLwsc (echo: Target, a: Target, k: Target | undefined, loader: Loader): Promise<void> {
  const url = `ws://127.0.0.1:${echo.port}/`
  const modes = ['reused', 'pool', 'fresh'] as const
  const rate: Samples = new Map()
  const cpu: Samples = new Map()
  const relay: Samples = new Map()
  const relayP50: Samples = new Map()
  const relayCpu: Samples = new Map()
  const relays: Array<[Name, Target]> = [['A', a], ...(k === undefined ? [] : [['K', k] as [Name, Target]])]
  const key = (m: string): Name => m as Name
  for (let round = 0; round < P.rounds; round++) {
    for (const mode of rotated([...modes], round)) {
      const r = await measured(loader, echo, { cmd: 'lwsc', url, mode, seconds: P.lwscSeconds })
      push(rate, key(mode), r.done / r.seconds)
      push(cpu, key(mode), r.cpu)
    }
    for (const [name, t] of rotated(relays, round)) {
      const r = await measured(loader, t, { cmd: 'http', url: `http://127.0.0.1:${t.port}/lwsc?url=${url}`, concurrency: P.httpConcurrency, seconds: P.lwscSeconds })
      push(relay, name, r.done / r.seconds)
      push(relayP50, name, r.p50 ?? NaN)
      push(relayCpu, name, r.serverCpu)
    }
  }
  out('### lwsc: requests/s to a WebSocket peer answering OPTIONS (raw ws, its own process)')
  out()
  table(['mode', 'requests/s', 'vs new connection per request', 'client CPU'], modes.map((m) => [
    { reused: 'one reused connection, 1 in flight', pool: 'pool of 4, 64 in flight', fresh: 'new connection per request' }[m],
    fmt(spread(rate.get(key(m)) ?? [])), fmt(ratio(rate, key(m), key('fresh')), 1), percent(spread(cpu.get(key(m)) ?? []))
  ]))
  out(`Through an HTTP front, ${P.httpConcurrency} keep-alive GETs in flight: GET /lwsc on a Fastify route calling`)
  out('`app.lwsc.requestProto()` (A) vs Kamailio\'s xhttp calling `lwsc_request_proto()` (K).')
  out()
  table(['front', 'requests/s', 'vs K', 'p50 ms', 'front CPU'], relays.map(([name]) => [
    name, fmt(spread(relay.get(name) ?? [])), fmt(ratio(relay, name, 'K'), 2), fmt(spread(relayP50.get(name) ?? []), 2), percent(spread(relayCpu.get(name) ?? []))
  ]))
  goal('lwsc pool / new connection per request ≥ 10', ratio(rate, key('pool'), key('fresh')), (m) => m >= 10, 1)
}

// ---- main -------------------------------------------------------------------------------------------

async function main (): Promise<void> {
  const started = Date.now()
  const stops: Array<() => Promise<void> | void> = []
  try {
    out(`# fastify-sip-ws bench — ${new Date().toISOString()}, Node ${process.version}, ${SMOKE ? 'SMOKE (tiny numbers, not figures)' : `${P.rounds} interleaved rounds (${P.idleRounds} for memory)`}`)
    out()
    const targets: Target[] = []
    for (const [kind, name] of [['A', 'A'], ['A-async', 'A-async'], ['B', 'B'], ['B', 'B-copy'], ['C', 'C']] as const) {
      if (!TARGETS.has(name)) continue
      const t = await startNodeTarget(kind, name)
      stops.push(t.stop)
      targets.push(t)
    }
    const k = TARGETS.has('K') ? await startKamailioTarget() : 'not asked for (--targets)'
    if (typeof k === 'string') {
      out(`Target K skipped: ${k}`)
      out()
    } else {
      stops.push(k.stop)
      targets.push(k)
    }
    out(`Targets: ${targets.map((t) => `${t.name} on 127.0.0.1:${t.port}`).join(', ')}`)
    out()
    const loaders = await Promise.all(Array.from({ length: P.loaders }, async () => await Loader.start()))
    stops.push(() => { for (const l of loaders) l.stop() })

    if (wants('rtt')) await measureRoundTrips(targets, loaders[0])
    if (wants('handshakes')) await measureHandshakes(targets, loaders[0])
    if (wants('idle')) await measureIdle(targets, loaders)
    if (wants('registry')) measureRegistry()
    const byName = (name: Name): Target | undefined => targets.find((t) => t.name === name)
    const [a, c] = [byName('A'), byName('C')]
    if (wants('lwsc') && a !== undefined && c !== undefined) await measureLwsc(c, a, byName('K'), loaders[0])

    out('### Goals')
    out()
    table(['goal', 'measured (median, min–max)', 'noise floor', ''], goals.map((g) => [g.text, g.shown, g.noise === undefined ? '' : `±${(noiseWidth(g.noise) * 100).toFixed(0)}%`, verdict(g)]))
    out(`Bench took ${Math.round((Date.now() - started) / 1000)} s.`)
  } finally {
    for (const stop of stops.reverse()) await stop()
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${String((err as Error).stack ?? err)}\n`)
  process.exitCode = 1
})
