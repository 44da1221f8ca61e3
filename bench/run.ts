/**
 * `npm run bench`: this plugin (A) side by side with plain fastify + @fastify/websocket (B), raw ws on
 * node:http (C) and Kamailio 5.6 (K, when installed), in one run. Every target and every load generator is
 * its own process; per-core measures pin the servers to one core and the load to the others (bench/pin.ts).
 * Rounds are short and interleaved (each round visits every target, in a rotated order); each figure is the
 * median of the rounds with min–max, ratios are taken per round, and every measure runs a control whose
 * spread is its noise floor (bench/verdict.ts).
 *
 *   npm run bench                       the full run (about 12 minutes on 2 cores)
 *   npm run bench -- --twice            two full runs, then whether every verdict agreed (bench/twice.ts)
 *   npm run bench -- --smoke            tiny numbers, to check every target and measure works (test/bench-smoke)
 *   npm run bench -- --only rtt,sizes   some measures: rtt, sizes, handshakes, machine, idle, registry, lwsc, cluster
 *   npm run bench -- --targets A,A-copy,C   some targets: A, A-copy, A-async, A-js, A2, B, C, K
 *   npm run bench -- --no-pin           no taskset pinning
 *   npm run bench -- --no-cluster-redis A2's workers without cluster mode (by default they share a redis-server
 *                                       the bench starts, as `WORKERS=2` with `REDIS_URL` runs the example)
 *   WORKERS=4 npm run bench             A2 with 4 workers instead of 2
 *
 * See bench/README.md for the method and the latest tables.
 */
import { execFile } from 'node:child_process'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Loader } from './loader'
import type { LoadCommand, LoadResult } from './load'
import { cores, pin } from './pin'
import { cpuSeconds, establishedTo, machineBusySeconds } from './proc'
import { registryBench } from './registry'
import { startRedis } from '../test/helpers/redis'
import { startKamailioTarget, startNodeTarget, type Target } from './servers'
import { spread } from './spread'
import { twice } from './twice'
import { fmt, goalRow, noiseFloor, noiseText, percent, pooledNoiseFloor, Samples, wider, type Goal, type Noise } from './verdict'

const argv = process.argv.slice(2)
const SMOKE = argv.includes('--smoke')
const listArg = (flag: string): Set<string> | null => { const i = argv.indexOf(flag); return i === -1 ? null : new Set(argv[i + 1].split(',')) }
const ONLY = listArg('--only')
const wants = (measure: string): boolean => ONLY === null || ONLY.has(measure)
const TARGETS = listArg('--targets') ?? new Set(['A', 'A-copy', 'A-async', 'A-js', 'A2', 'B', 'C', 'K'])
const CORES = cores(!argv.includes('--no-pin'))
/** The control of every socket measure: A against an identical second A. */
const CONTROL: [string, string] = ['A-copy', 'A']
/** What per-core ratios are taken against: raw ws. */
const REF = 'C'

const P = SMOKE
  ? { rounds: 1, idleRounds: 1, rttConns: [1, 5], sizes: [0, 4096], sizeConns: 5, machineConns: [10], warmupMs: 50, seconds: 0.2, handshakeConcurrency: 4, idle: 200, loaders: 2, registrySizes: [1_000], registryRounds: 5, lwscSeconds: 0.2, httpConcurrency: 2 }
  // 8 short rounds: enough for a median, and for the noise floor to set the most extreme round aside at
  // each end (bench/verdict.ts); 3 for memory, which swings less and costs most (15,000 connections opened
  // and closed per target and round).
  : { rounds: 8, idleRounds: 3, rttConns: [1, 50, 500], sizes: [0, 4096, 16384, 65536], sizeConns: 50, machineConns: [50, 500], warmupMs: 250, seconds: 0.75, handshakeConcurrency: 20, idle: 15_000, loaders: 4, registrySizes: [1_000, 100_000, 1_000_000], registryRounds: 101, lwscSeconds: 0.75, httpConcurrency: 8 }

const out = (line = ''): void => { process.stdout.write(line + '\n') }
const plural = (n: number, what: string): string => `${n.toLocaleString('en-US')} ${what}${n === 1 ? '' : 's'}`

// ---- placing processes on cores ---------------------------------------------------------------------

type Placement = 'core' | 'machine'

/** Per core: servers on the server core, load (and this process) on the others. Whole machine: anywhere. */
function place (placement: Placement, targets: Target[], loaders: Loader[]): void {
  if (!CORES.pinned) return
  const [server, load] = placement === 'core' ? [CORES.server, CORES.load] : [CORES.all, CORES.all]
  for (const t of targets) pin(t.pids(), server)
  pin([process.pid, ...loaders.map((l) => l.pid)], load)
}

// ---- one observation --------------------------------------------------------------------------------

interface Observation { rate: number, perCpu: number, serverCpu: number, loadCpu: number, machineCpu: number, p50?: number, p99?: number }

/**
 * Load commands run at once on several loaders against one target, with the target's CPU time from the
 * first window's start mark to the last one's end mark. The rate sums each loader's own.
 */
async function observe (loaders: Loader[], target: Target, commands: LoadCommand[]): Promise<Observation> {
  let starts = 0
  let ends = 0
  let cpu0 = 0
  let cpu1 = 0
  let busy0 = 0
  let busy1 = 0
  let t0 = 0n
  let t1 = 0n
  const onMark = (mark: string): void => {
    if (mark === 'start' && starts++ === 0) { cpu0 = cpuSeconds(target.pids()); busy0 = machineBusySeconds(); t0 = process.hrtime.bigint() }
    if (mark === 'end' && ++ends === commands.length) { cpu1 = cpuSeconds(target.pids()); busy1 = machineBusySeconds(); t1 = process.hrtime.bigint() }
  }
  const results = await Promise.all(commands.map(async (c, i) => await loaders[i].run(c, onMark)))
  for (const r of results) if (r.failed > 0) out(`  ! ${target.name} ${commands[0].cmd}: ${r.failed} failed (${r.firstError ?? ''})`)
  const seconds = Number(t1 - t0) / 1e9
  const rate = results.reduce((sum, r) => sum + r.done / r.seconds, 0)
  const serverCpu = (cpu1 - cpu0) / seconds
  return {
    rate,
    perCpu: rate / serverCpu,
    serverCpu,
    loadCpu: results.reduce((sum, r) => sum + r.cpu, 0),
    machineCpu: (busy1 - busy0) / seconds,
    p50: results[0].p50,
    p99: results[0].p99
  }
}

/** Every figure of a measure, sampled once per round and target. */
class Figures {
  readonly rate = new Samples()
  readonly perCpu = new Samples()
  readonly p50 = new Samples()
  readonly p99 = new Samples()
  readonly server = new Samples()
  readonly load = new Samples()
  readonly machine = new Samples()

  add (name: string, o: Observation): void {
    this.rate.push(name, o.rate)
    this.perCpu.push(name, o.perCpu)
    this.p50.push(name, o.p50 ?? NaN)
    this.p99.push(name, o.p99 ?? NaN)
    this.server.push(name, o.serverCpu)
    this.load.push(name, o.loadCpu)
    this.machine.push(name, o.machineCpu)
  }

  private readonly pooled = new Set<string>()

  /** The control's noise floor on one figure; its ratios also go to the run's pool. */
  noise (figure: 'rate' | 'perCpu'): Noise {
    const ratios = this[figure].ratios(...CONTROL)
    if (!this.pooled.has(figure)) {
      this.pooled.add(figure)
      controlPool.push(...ratios)
    }
    return { ...noiseFloor(CONTROL.join('/'), ratios), pooled: true }
  }
}

/**
 * Each round visits every target once, starting one further along, and every other round in reverse: no
 * target always goes first, and each follows its neighbour as often as it precedes it (A-copy right after
 * A in every round would turn whatever the previous target leaves behind into a bias of the control).
 */
function rotated<T> (list: T[], round: number): T[] {
  const k = Math.floor(round / 2) % list.length
  const turned = [...list.slice(k), ...list.slice(0, k)]
  return round % 2 === 0 ? turned : turned.reverse()
}

async function inRounds (targets: Target[], rounds: number, one: (t: Target) => Promise<Observation>): Promise<Figures> {
  const figures = new Figures()
  for (let round = 0; round < rounds; round++) {
    for (const t of rotated(targets, round)) figures.add(t.name, await one(t))
  }
  return figures
}

// ---- output -----------------------------------------------------------------------------------------

const goals: Goal[] = []
/** Every socket measure's control ratios (A-copy/A, per CPU-second and per second) of this run. */
const controlPool: number[] = []

function goal (text: string, ratios: number[], noise: Noise, op: Goal['op'], threshold: number, digits = 2): void {
  goals.push({ text, value: spread(ratios), noise, op, threshold, digits })
}

function table (header: string[], rows: string[][]): void {
  out(`| ${header.join(' | ')} |`)
  out(`|${header.map(() => '---').join('|')}|`)
  for (const row of rows) out(`| ${row.join(' | ')} |`)
  out()
}

function noiseLine (f: Figures, unit: string): void {
  out(`Noise floor: per server CPU-second ${noiseText(f.noise('perCpu'))}; ${unit}/s ${noiseText(f.noise('rate'))}.`)
  out()
}

/** The table every rate measure prints: the primary figure first, each against `ref` when it ran. */
function rateTable (f: Figures, targets: Target[], unit: string, opts: { latency: boolean, ref?: string }): void {
  const ref = opts.ref ?? REF
  const vs = (s: Samples, name: string): string => s.has(ref) ? fmt(s.ratio(name, ref), 2) : ''
  table([
    'target', `${unit} per server CPU-second`, `vs ${ref}`, `${unit}/s`, `vs ${ref}`,
    ...(opts.latency ? ['p50 ms', 'p99 ms'] : []), 'server CPU', 'load CPU', 'machine CPU'
  ], targets.map((t) => [
    t.name, fmt(f.perCpu.of(t.name)), vs(f.perCpu, t.name), fmt(f.rate.of(t.name)), vs(f.rate, t.name),
    ...(opts.latency ? [fmt(f.p50.of(t.name), 3), fmt(f.p99.of(t.name), 3)] : []),
    percent(f.server.of(t.name)), percent(f.load.of(t.name)), percent(f.machine.of(t.name))
  ]))
}

function hasBufferutil (): boolean {
  try {
    require.resolve('bufferutil')
    return true
  } catch {
    return false
  }
}

const only = (targets: Target[], names: string[]): Target[] => targets.filter((t) => names.includes(t.name))
const ran = (f: Figures, ...names: string[]): boolean => names.every((n) => f.perCpu.has(n))

// ---- measures ---------------------------------------------------------------------------------------

const rtt = (t: Target, conns: number, localAddress: string, size?: number): LoadCommand =>
  ({ cmd: 'rtt', port: t.port, conns, warmupMs: P.warmupMs, seconds: P.seconds, localAddress, size })

async function measureRoundTrips (all: Target[], loaders: Loader[]): Promise<void> {
  const targets = only(all, ['A', 'A-copy', 'A-async', 'B', 'C', 'K'])
  place('core', all, loaders)
  for (const conns of P.rttConns) {
    const f = await inRounds(targets, P.rounds, async (t) => await observe(loaders.slice(0, 1), t, [rtt(t, conns, '127.0.0.2')]))
    out(`### Round trips, ${plural(conns, 'connection')}, one core (one OPTIONS in flight on each)`)
    out()
    noiseLine(f, 'round trips')
    rateTable(f, targets, 'round trips', { latency: true })
    const at = `at ${plural(conns, 'connection')}`
    const perCpu = f.noise('perCpu')
    if (ran(f, 'A', 'C')) goal(`A/C round trips per server CPU-second ${at}`, f.perCpu.ratios('A', 'C'), perCpu, '>=', 0.95)
    if (ran(f, 'A', 'B')) goal(`A/B round trips per server CPU-second ${at}`, f.perCpu.ratios('A', 'B'), perCpu, '>=', 1.00)
    if (ran(f, 'A-async', 'A')) goal(`A-async/A round trips per server CPU-second ${at} (the ordered queue)`, f.perCpu.ratios('A-async', 'A'), perCpu, '>=', 0.95)
    if (conns === 50 && ran(f, 'A', 'K')) goal(`A/K round trips per server CPU-second ${at}, one core each`, f.perCpu.ratios('A', 'K'), perCpu, '>=', 2.0)
  }
}

async function measureSizes (all: Target[], loaders: Loader[]): Promise<void> {
  const targets = only(all, ['A', 'A-copy', 'A-js', 'C'])
  place('core', all, loaders)
  out(`### Message sizes, ${plural(P.sizeConns, 'connection')}, one core (an OPTIONS with a body, answered by a bare 200 OK)`)
  out()
  out('A-js is A with ws\'s native `bufferutil` turned off (WS_NO_BUFFER_UTIL=1): ws then unmasks every frame')
  out(`in JavaScript, a byte at a time. bufferutil is ${hasBufferutil() ? 'installed, so A, A-copy and C use it' : '**not installed**: A and A-js are the same here'}.`)
  out()
  for (const size of P.sizes) {
    const f = await inRounds(targets, P.rounds, async (t) => await observe(loaders.slice(0, 1), t, [rtt(t, P.sizeConns, '127.0.0.2', size)]))
    const bytes = size === 0 ? 'a bare OPTIONS (about 245 bytes)' : `${plural(size, 'byte')}`
    out(`#### ${bytes}`)
    out()
    noiseLine(f, 'messages')
    rateTable(f, targets, 'messages', { latency: true })
    if (ran(f, 'A', 'A-js')) out(`bufferutil: A/A-js per server CPU-second ${fmt(f.perCpu.ratio('A', 'A-js'), 2)}.`)
    out()
  }
}

async function measureHandshakes (all: Target[], loaders: Loader[]): Promise<void> {
  const targets = only(all, ['A', 'A-copy', 'B', 'C', 'K'])
  place('core', all, loaders)
  // 20 source addresses: the load side's TIME_WAIT sockets stay far from the ephemeral port range's end.
  const localAddresses = Array.from({ length: 20 }, (_, i) => `127.0.0.${20 + i}`)
  const f = await inRounds(targets, P.rounds, async (t) => await observe(loaders.slice(0, 1), t, [
    { cmd: 'handshakes', port: t.port, concurrency: P.handshakeConcurrency, seconds: P.seconds, localAddresses }
  ]))
  out(`### Handshakes, one core (open with sub-protocol sip, then a clean close), concurrency ${P.handshakeConcurrency}`)
  out()
  out('A runs two `xhttp:request` hooks on each, one sync and one async.')
  out()
  noiseLine(f, 'handshakes')
  rateTable(f, targets, 'handshakes', { latency: false })
  if (ran(f, 'A', 'C')) goal('A/C handshakes per server CPU-second, with a sync and an async xhttp:request hook', f.perCpu.ratios('A', 'C'), f.noise('perCpu'), '>=', 0.95)
}

/** A1 (A), A2 and K with both cores each, the load generators too: what the whole machine serves. */
async function measureMachine (all: Target[], loaders: Loader[]): Promise<void> {
  const targets = only(all, ['A', 'A-copy', 'A2', 'K'])
  place('machine', all, loaders)
  const pair = loaders.slice(0, 2)
  for (const conns of P.machineConns) {
    const f = await inRounds(targets, P.rounds, async (t) => await observe(pair, t, pair.map((_, i) =>
      rtt(t, Math.ceil(conns / pair.length), `127.0.0.${3 + i}`))))
    out(`### Round trips, ${plural(conns, 'connection')}, whole machine (${availableParallelism()} cores for servers and load alike; ${pair.length} load generators)`)
    out()
    out('A is one process (A1); A2 is two node:cluster workers on one port; K is Kamailio with 2 TCP workers.')
    out()
    noiseLine(f, 'round trips')
    rateTable(f, targets, 'round trips', { latency: false, ref: 'K' })
    const at = `at ${plural(conns, 'connection')}`
    if (conns === 50 && ran(f, 'A2', 'K')) goal(`A2/K round trips/s ${at}, whole machine`, f.rate.ratios('A2', 'K'), f.noise('rate'), '>=', 1.5)
    if (ran(f, 'A2', 'A')) goal(`A2/A1 round trips per server CPU-second ${at}, whole machine`, f.perCpu.ratios('A2', 'A'), f.noise('perCpu'), '>=', 0.90)
  }
  place('core', all, loaders)
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

async function measureIdle (all: Target[], loaders: Loader[]): Promise<void> {
  const targets = only(all, ['A', 'A-copy', 'B', 'C', 'K'])
  place('core', all, loaders)
  const perConn = new Samples()
  const openRate = new Samples()
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
      perConn.push(t.name, (after - before) / open)
      openRate.push(t.name, open / (ms / 1000))
      await Promise.all(loaders.map(async (l) => await l.run({ cmd: 'release' })))
    }
  }
  const noise = noiseFloor(CONTROL.join('/'), perConn.ratios(...CONTROL))
  out(`### Memory per idle connection, ${total.toLocaleString('en-US')} connections over ${loaders.length} load processes`)
  out()
  out('Server memory with the connections open minus the same before them, divided by their number. Node:')
  out('RSS after two full GCs. Kamailio: shared memory in use (core.shmmem real_used), where it keeps connections.')
  out()
  out(`Noise floor: ${noiseText(noise)}.`)
  out()
  table(['target', 'bytes per connection', 'vs B', 'opened/s while filling'], targets.map((t) => [
    t.name, fmt(perConn.of(t.name)), fmt(perConn.ratio(t.name, 'B'), 2), fmt(openRate.of(t.name))
  ]))
  if (perConn.has('A') && perConn.has('B')) goal('A/B memory per idle connection', perConn.ratios('A', 'B'), noise, '<=', 1.2)
}

function measureRegistry (): void {
  const { rows, control } = registryBench(P.registrySizes, P.registryRounds)
  const noise = noiseFloor("wsDump('used_desc') timed twice", control)
  out(`### wsDump and one keepalive tick, no sockets (median of ${P.registryRounds} rounds)`)
  out()
  out(`Noise floor: ${noiseText(noise)}.`)
  out()
  const sizes = [...new Set(rows.map((r) => r.size))]
  table(['measure', ...sizes.map((n) => `${n.toLocaleString('en-US')} entries`)], [...new Set(rows.map((r) => r.measure))].map((m) => [
    m, ...sizes.map((n) => { const r = rows.find((x) => x.measure === m && x.size === n); return r === undefined ? '' : fmt(r.us, 1, ' µs') })
  ]))
  const largest = Math.max(...sizes)
  // The slowest median among the measures named `prefix` (the dump orders; the two kinds of tick).
  const worst = (prefix: string): number[] => [Math.max(...rows.filter((r) => r.size === largest && r.measure.startsWith(prefix)).map((r) => r.us.median))]
  goal(`wsDump at ${largest.toLocaleString('en-US')} entries, µs (slowest order)`, worst('wsDump'), noise, '<=', 1000, 1)
  goal(`keepalive tick at ${largest.toLocaleString('en-US')} entries, µs (slowest case)`, worst('keepalive tick'), noise, '<=', 1000, 1)
}

async function measureLwsc (echo: Target, a: Target, k: Target | undefined, loader: Loader, all: Target[]): Promise<void> {
  place('core', all, [loader])
  const url = `ws://127.0.0.1:${echo.port}/`
  // pool-copy, the same as pool, is this measure's control.
  const modes = ['reused', 'pool', 'pool-copy', 'fresh'] as const
  const rate = new Samples()
  const cpu = new Samples()
  const relay = new Samples()
  const relayP50 = new Samples()
  const relayCpu = new Samples()
  const relays = [a, ...(k === undefined ? [] : [k])]
  for (let round = 0; round < P.rounds; round++) {
    for (const mode of rotated([...modes], round)) {
      const r: LoadResult = await loader.run({ cmd: 'lwsc', url, mode: mode === 'pool-copy' ? 'pool' : mode, seconds: P.lwscSeconds })
      rate.push(mode, r.done / r.seconds)
      cpu.push(mode, r.cpu)
    }
    for (const t of rotated(relays, round)) {
      const o = await observe([loader], t, [{ cmd: 'http', url: `http://127.0.0.1:${t.port}/lwsc?url=${url}`, concurrency: P.httpConcurrency, seconds: P.lwscSeconds }])
      relay.push(t.name, o.rate)
      relayP50.push(t.name, o.p50 ?? NaN)
      relayCpu.push(t.name, o.serverCpu)
    }
  }
  const noise = noiseFloor('pool-copy/pool', rate.ratios('pool-copy', 'pool'))
  out('### lwsc: requests/s to a WebSocket peer answering OPTIONS (raw ws, its own process)')
  out()
  out(`Noise floor: ${noiseText(noise)}.`)
  out()
  const label = { reused: 'one reused connection, 1 in flight', pool: 'pool of 4, 64 in flight', 'pool-copy': 'pool of 4 again (the control)', fresh: 'new connection per request' }
  table(['mode', 'requests/s', 'vs new connection per request', 'client CPU'], modes.map((m) => [
    label[m], fmt(rate.of(m)), fmt(rate.ratio(m, 'fresh'), 1), percent(cpu.of(m))
  ]))
  out(`Through an HTTP front, ${P.httpConcurrency} keep-alive GETs in flight: GET /lwsc on a Fastify route calling`)
  out('`app.lwsc.requestProto()` (A) vs Kamailio\'s xhttp calling `lwsc_request_proto()` (K).')
  out()
  table(['front', 'requests/s', 'vs K', 'p50 ms', 'front CPU'], relays.map(({ name }) => [
    name, fmt(relay.of(name)), fmt(relay.ratio(name, 'K'), 2), fmt(relayP50.of(name), 2), percent(relayCpu.of(name))
  ]))
  goal('lwsc pool / new connection per request', rate.ratios('pool', 'fresh'), noise, '>=', 10, 1)
}

/**
 * Cluster mode (SPEC §7): bench/cluster.ts in its own processes (three nodes of ours and three of socket.io's
 * redis adapter on one redis-server), its tables and verdicts printed here. The other targets sit idle.
 */
async function measureCluster (): Promise<void> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', join(__dirname, 'cluster.ts'), ...(SMOKE ? ['--smoke'] : [])], { maxBuffer: 4 * 1024 * 1024, timeout: 15 * 60_000 })
  out('### Cluster mode: cross-node sends through Redis (bench/cluster.ts)')
  out()
  // Its own title line aside; its headings one level down.
  for (const line of stdout.split('\n').slice(1)) out(line.startsWith('### ') ? '#' + line : line)
}

// ---- main -------------------------------------------------------------------------------------------

async function startTargets (stops: Array<() => Promise<void> | void>): Promise<Target[]> {
  const targets: Target[] = []
  const add = (t: Target): void => { stops.push(t.stop); targets.push(t) }
  let redisUrl: string | undefined
  if (!argv.includes('--no-cluster-redis') && TARGETS.has('A2')) {
    // Cluster mode (SPEC §7): A2's workers are nodes of one registry through this Redis (see startA).
    const redis = await startRedis()
    stops.push(redis.stop)
    redisUrl = redis.url
    out(`Cluster mode: A2's workers share the Redis at ${redis.url}.`)
    out()
  }
  const node: Array<[string, Parameters<typeof startNodeTarget>[0], Record<string, string>]> = [
    ['A', 'A', {}], ['A-copy', 'A', {}], ['A-async', 'A-async', {}], ['A-js', 'A', { WS_NO_BUFFER_UTIL: '1' }],
    ['A2', 'A2', { WORKERS: process.env.WORKERS ?? '2', ...(redisUrl === undefined ? {} : { BENCH_REDIS: redisUrl }) }], ['B', 'B', {}], ['C', 'C', {}]
  ]
  for (const [name, kind, env] of node) if (TARGETS.has(name)) add(await startNodeTarget(kind, name, env))
  const k = TARGETS.has('K') ? await startKamailioTarget('K', 2, SMOKE) : 'not asked for (--targets)'
  if (typeof k === 'string') {
    out(`Target K skipped: ${k}`)
    out()
  } else {
    add(k)
  }
  return targets
}

async function main (): Promise<void> {
  const started = Date.now()
  const stops: Array<() => Promise<void> | void> = []
  try {
    out(`# fastify-sip-ws bench — ${new Date().toISOString()}, Node ${process.version}, ${SMOKE ? 'SMOKE (tiny numbers, not figures)' : `${P.rounds} interleaved rounds of ${P.seconds} s (${P.idleRounds} for memory)`}`)
    out()
    out(CORES.pinned
      ? `Pinning: servers on core ${CORES.server}, load generators on core${CORES.load.length > 1 ? 's' : ''} ${CORES.load} (taskset), except where a measure says whole machine.`
      : `Pinning: off (${CORES.why ?? ''}); every process may use every core.`)
    out()
    const targets = await startTargets(stops)
    out(`Targets: ${targets.map((t) => `${t.name} on 127.0.0.1:${t.port}`).join(', ')}`)
    out()
    const loaders = await Promise.all(Array.from({ length: P.loaders }, async () => await Loader.start()))
    stops.push(() => { for (const l of loaders) l.stop() })

    if (wants('rtt')) await measureRoundTrips(targets, loaders)
    if (wants('sizes')) await measureSizes(targets, loaders)
    if (wants('handshakes')) await measureHandshakes(targets, loaders)
    if (wants('machine')) await measureMachine(targets, loaders)
    if (wants('idle')) await measureIdle(targets, loaders)
    if (wants('registry')) measureRegistry()
    const byName = (name: string): Target | undefined => targets.find((t) => t.name === name)
    const [a, c] = [byName('A'), byName('C')]
    if (wants('lwsc') && a !== undefined && c !== undefined) await measureLwsc(c, a, byName('K'), loaders[0], targets)
    if (wants('cluster')) await measureCluster()

    out('### Goals')
    out()
    out('Judged on the median ratio widened by its measure\'s noise floor: pass when the whole band meets the goal,')
    out('miss when none of it does, "within noise" when the run cannot tell.')
    out()
    const pooled = pooledNoiseFloor(`${CONTROL.join('/')}, every socket measure pooled`, controlPool)
    out(`Run-wide noise floor: ${noiseText(pooled)}, from ${controlPool.length} control ratios; a socket measure's goal is`)
    out('widened by it where its own floor is narrower.')
    out()
    // Only the socket measures' goals: memory has the same control pair, but its ratios are not in the pool.
    const judged = goals.map((g) => g.noise.pooled === true ? { ...g, noise: wider(g.noise, pooled) } : g)
    table(['goal', 'measured (median, min–max of rounds)', 'noise floor', 'band', 'verdict'], judged.map(goalRow))
    out(`Bench took ${Math.round((Date.now() - started) / 1000)} s.`)
  } finally {
    for (const stop of stops.reverse()) await stop()
  }
}

const run = argv.includes('--twice') ? async () => { process.exitCode = await twice(argv.filter((a) => a !== '--twice')) } : main
run().catch((err: unknown) => {
  process.stderr.write(`${String((err as Error).stack ?? err)}\n`)
  process.exitCode = 1
})

