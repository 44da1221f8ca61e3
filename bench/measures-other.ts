/**
 * The measures of `npm run bench` that are not rates: the reconnect storm, memory per idle connection,
 * the registry's dump and keepalive tick, lwsc, and cluster mode (bench/cluster.ts, in its own processes).
 */
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { Loader } from './loader'
import type { LoadResult } from './load'
import type { Bench } from './measures-sockets'
import { CONTROL, observe, place, rotated } from './observe'
import { establishedTo } from './proc'
import { registryBench } from './registry'
import { loadAverage, out, plural, table } from './report'
import type { Target } from './servers'
import { STORM_HEADER, stormRows, storms } from './storm'
import { fmt, noiseFloor, noiseText, percent, Samples } from './verdict'

const only = (targets: Target[], names: string[]): Target[] => targets.filter((t) => names.includes(t.name))

export async function measureStorm (b: Bench): Promise<void> {
  const p = b.P.storm
  const targets = only(b.targets, ['A', 'K'])
  place(b.cores, 'core', b.targets, b.loaders)
  const load0 = loadAverage()
  // Source addresses from 127.0.100.0/24 on, one network per storm.
  const f = await storms(targets, b.loaders, { ...p, firstNetwork: 100 }, out)
  out(`### Reconnect storm: ${plural(p.clients, 'client')} connect at once to one node (one core), ${plural(p.rounds, 'storm')} each, alternated`)
  out()
  out(`${b.loaders.length} load processes open ${plural(Math.ceil(p.clients / b.loaders.length), 'WebSocket')} each at the same instant. A client answered 503 comes back after`)
  out(`its Retry-After. Each attempt is bounded by ${p.attemptTimeoutMs / 1000} s, the storm by ${p.deadlineMs / 1000} s. Load average before: ${load0}; after: ${loadAverage()}.`)
  out()
  table(STORM_HEADER, stormRows(f))
  // The control: A's storms against each other, round by round.
  const a = f.rounds.get('A') ?? []
  const control = a.slice(1).map((r, i) => r.allOpenMs / a[i].allOpenMs)
  const noise = noiseFloor('A storm / the A storm before it, all open after', control)
  out(`Noise floor: ${noiseText(noise)}.`)
  out()
  const exact = { control: 'none: clients are counted', ratios: { median: 1, min: 1, max: 1 }, width: 0 }
  if (a.length > 0) b.report.goal(`A storm: share of the ${p.clients.toLocaleString('en-US')} clients open by the end`, a.map((r) => r.opened / p.clients), exact, '>=', 1.0)
  const k = f.rounds.get('K') ?? []
  if (k.length > 0 && a.length > 0) {
    // Kamailio's time is until its last client opened: not every client when it dropped some (the storm
    // table says how many), so the share goal above is the one that compares completeness.
    b.report.goal('K/A storm time until the last client open (K: its last that opened at all)', f.ratio('K', 'A'), noise, '>=', 1.0)
  }
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

export async function measureIdle (b: Bench): Promise<void> {
  const p = b.P.idle
  const targets = only(b.targets, ['A', 'B', 'C', 'C-copy', 'K'])
  place(b.cores, 'core', b.targets, b.loaders)
  const perConn = new Samples()
  const openRate = new Samples()
  const share = Math.floor(p.count / b.loaders.length)
  const total = share * b.loaders.length
  const load0 = loadAverage()
  // Source addresses are never reused within a run: the load side's sockets linger in TIME_WAIT after a
  // release, and a bound connect() then searches ever longer for a free port, so a later target would
  // fill more slowly than an earlier one.
  let nextAddress = 50
  for (let round = 0; round < p.rounds; round++) {
    for (const t of rotated(targets, round)) {
      const base = nextAddress
      nextAddress += b.loaders.length
      await waitForConnections(t.port, 0, 30_000)
      const before = await settledMemory(t)
      const t0 = Date.now()
      const opened = await Promise.all(b.loaders.map(async (l, i) =>
        await l.run({ cmd: 'hold', port: t.port, count: share, concurrency: 32, localAddress: `127.0.0.${base + i}` })))
      const ms = Date.now() - t0
      const open = opened.reduce((n, r) => n + r.done, 0)
      const seen = await waitForConnections(t.port, total, 10_000)
      const after = await t.memory()
      if (open !== total || seen !== total) out(`  ! ${t.name}: ${open} of ${total} opened, ${seen} established (${opened.find((r) => r.firstError !== undefined)?.firstError ?? ''})`)
      perConn.push(t.name, (after - before) / open)
      openRate.push(t.name, open / (ms / 1000))
      await Promise.all(b.loaders.map(async (l) => await l.run({ cmd: 'release' })))
    }
  }
  const noise = noiseFloor(CONTROL.join('/'), perConn.ratios(...CONTROL))
  out(`### Memory per idle connection, ${total.toLocaleString('en-US')} connections over ${b.loaders.length} load processes, ${plural(p.rounds, 'round')}`)
  out()
  out('Server memory with the connections open minus the same before them, divided by their number. Node:')
  out('RSS after two full GCs. Kamailio: shared memory in use (core.shmmem real_used), where it keeps connections.')
  out()
  out(`Noise floor: ${noiseText(noise)}. Load average before: ${load0}; after: ${loadAverage()}.`)
  out()
  table(['target', 'bytes per connection', 'vs B', 'opened/s while filling'], targets.map((t) => [
    t.name, fmt(perConn.of(t.name)), fmt(perConn.ratio(t.name, 'B'), 2), fmt(openRate.of(t.name))
  ]))
  if (perConn.has('A') && perConn.has('B')) b.report.goal('A/B memory per idle connection', perConn.ratios('A', 'B'), noise, '<=', 1.2)
}

export function measureRegistry (b: Bench): void {
  const p = b.P.registry
  const { rows, control } = registryBench(p.sizes, p.rounds)
  const noise = noiseFloor("wsDump('used_desc') timed twice", control)
  out(`### wsDump and one keepalive tick, no sockets (median of ${p.rounds} rounds)`)
  out()
  out(`Noise floor: ${noiseText(noise)}. Load average: ${loadAverage()}.`)
  out()
  const sizes = [...new Set(rows.map((r) => r.size))]
  table(['measure', ...sizes.map((n) => `${n.toLocaleString('en-US')} entries`)], [...new Set(rows.map((r) => r.measure))].map((m) => [
    m, ...sizes.map((n) => { const r = rows.find((x) => x.measure === m && x.size === n); return r === undefined ? '' : fmt(r.us, 1, ' µs') })
  ]))
  const largest = Math.max(...sizes)
  // The slowest median among the measures named `prefix` (the dump orders; the two kinds of tick).
  const worst = (prefix: string): number[] => [Math.max(...rows.filter((r) => r.size === largest && r.measure.startsWith(prefix)).map((r) => r.us.median))]
  b.report.goal(`wsDump at ${largest.toLocaleString('en-US')} entries, µs (slowest order)`, worst('wsDump'), noise, '<=', 1000, 1)
  b.report.goal(`keepalive tick at ${largest.toLocaleString('en-US')} entries, µs (slowest case)`, worst('keepalive tick'), noise, '<=', 1000, 1)
}

export async function measureLwsc (b: Bench, echo: Target, a: Target, k: Target | undefined, loader: Loader): Promise<void> {
  const p = b.P.lwsc
  place(b.cores, 'core', b.targets, [loader])
  const url = `ws://127.0.0.1:${echo.port}/`
  // pool-copy, the same as pool, is this measure's control.
  const modes = ['reused', 'pool', 'pool-copy', 'fresh'] as const
  const rate = new Samples()
  const cpu = new Samples()
  const relay = new Samples()
  const relayP50 = new Samples()
  const relayCpu = new Samples()
  const relays = [a, ...(k === undefined ? [] : [k])]
  const load0 = loadAverage()
  for (let round = 0; round < p.rounds; round++) {
    for (const mode of rotated([...modes], round)) {
      const r: LoadResult = await loader.run({ cmd: 'lwsc', url, mode: mode === 'pool-copy' ? 'pool' : mode, seconds: p.seconds })
      rate.push(mode, r.done / r.seconds)
      cpu.push(mode, r.cpu)
    }
    for (const t of rotated(relays, round)) {
      const o = await observe([loader], t, [{ cmd: 'http', url: `http://127.0.0.1:${t.port}/lwsc?url=${url}`, concurrency: p.httpConcurrency, seconds: p.seconds }], out)
      relay.push(t.name, o.rate)
      relayP50.push(t.name, o.p50 ?? NaN)
      relayCpu.push(t.name, o.serverCpu)
    }
  }
  const noise = noiseFloor('pool-copy/pool', rate.ratios('pool-copy', 'pool'))
  out('### lwsc: requests/s to a WebSocket peer answering OPTIONS (raw ws, its own process)')
  out()
  out(`Noise floor: ${noiseText(noise)}. Load average before: ${load0}; after: ${loadAverage()}.`)
  out()
  const label = { reused: 'one reused connection, 1 in flight', pool: 'pool of 4, 64 in flight', 'pool-copy': 'pool of 4 again (the control)', fresh: 'new connection per request' }
  table(['mode', 'requests/s', 'vs new connection per request', 'client CPU'], modes.map((m) => [
    label[m], fmt(rate.of(m)), fmt(rate.ratio(m, 'fresh'), 1), percent(cpu.of(m))
  ]))
  out(`Through an HTTP front, ${p.httpConcurrency} keep-alive GETs in flight: GET /lwsc on a Fastify route calling`)
  out('`app.lwsc.requestProto()` (A) vs Kamailio\'s xhttp calling `lwsc_request_proto()` (K).')
  out()
  table(['front', 'requests/s', 'vs K', 'p50 ms', 'front CPU'], relays.map(({ name }) => [
    name, fmt(relay.of(name)), fmt(relay.ratio(name, 'K'), 2), fmt(relayP50.of(name), 2), percent(relayCpu.of(name))
  ]))
  b.report.goal('lwsc pool / new connection per request', rate.ratios('pool', 'fresh'), noise, '>=', 10, 1)
}

/**
 * Cluster mode (SPEC §7): bench/cluster.ts in its own processes (three nodes of ours and three of socket.io's
 * redis adapter on one redis-server), its tables and verdicts printed here. The other targets sit idle.
 */
export async function measureCluster (smoke: boolean): Promise<void> {
  const load0 = loadAverage()
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', join(__dirname, 'cluster.ts'), ...(smoke ? ['--smoke'] : [])], { maxBuffer: 4 * 1024 * 1024, timeout: 15 * 60_000 })
  out('### Cluster mode: cross-node sends through Redis (bench/cluster.ts)')
  out()
  out(`Load average before: ${load0}; after: ${loadAverage()}.`)
  out()
  // Its own title line aside; its headings one level down.
  for (const line of stdout.split('\n').slice(1)) out(line.startsWith('### ') ? '#' + line : line)
}
