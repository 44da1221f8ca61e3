/**
 * The reconnect storm: after a node dies, every one of its clients reconnects to a survivor at once.
 * `clients` WebSockets are opened at the same instant from several load processes (each well under the
 * open-files limit of a process), against one node pinned to one core: this plugin (A) and Kamailio (K),
 * alternated round by round. Per storm: the time until every client is open, handshake latency (p50, p99,
 * max), the server's CPU over the storm, and how many clients were answered 503 with Retry-After and
 * came back. Bounded: each attempt by `attemptTimeoutMs`, the whole storm by `deadlineMs`.
 *
 *   npm run bench -- --only storm --targets A,K      the storm alone
 */
import type { Loader } from './loader'
import { cpuSeconds, establishedTo, listenQueueCounters } from './proc'
import type { Target } from './servers'
import type { StormResult } from './storm-client'
import { spread, type Spread } from './spread'
import { nowMs } from './window'

export interface StormSettings {
  clients: number
  rounds: number
  deadlineMs: number
  attemptTimeoutMs: number
  /** The first x of the 127.0.x.0/24 networks the storms' source addresses come from, one per storm. */
  firstNetwork: number
}

export interface StormRound {
  /** Clients open, of `clients`. */
  opened: number
  failed: number
  firstError?: string
  /** ms from the start until the last client was open. */
  allOpenMs: number
  p50: number
  p99: number
  max: number
  refused: number
  cameBack: number
  /** Server CPU-seconds over the storm, per client opened, µs. */
  cpuPerClientUs: number
  /** Established at the server once the storm was over (what its kernel says, not what the load believes). */
  established: number
  /** Connection attempts the full accept queue dropped, and SYN cookies sent (bench/proc.ts). */
  overflows: number
  cookies: number
}

const percentile = (sorted: number[], q: number): number => sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]

async function connectionsDown (port: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs
  let n = establishedTo(port)
  while (n > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    n = establishedTo(port)
  }
  return n
}

/** One storm against `t`, from every loader, source addresses in 127.0.`network`.0/24. */
export async function stormOnce (t: Target, loaders: Loader[], s: StormSettings, network: number): Promise<StormRound> {
  // Kamailio frees a closed connection only seconds later: the previous storm's must be gone first.
  const left = await connectionsDown(t.port, 30_000)
  if (left > 0) throw new Error(`${t.name}: ${left} connections still open from the previous storm after 30 s`)
  const share = Math.ceil(s.clients / loaders.length)
  const startAt = nowMs() + 300
  let cpu0 = 0
  let cpu1 = 0
  let ends = 0
  const queue0 = listenQueueCounters()
  const results = await Promise.all(loaders.map(async (l, i) => await l.run({
    cmd: 'storm',
    port: t.port,
    clients: Math.min(share, s.clients - share * i),
    // Two addresses a loader: 127.0.N.(2i+1) and (2i+2), fresh for every storm (TIME_WAIT of the last).
    localAddresses: [`127.0.${network}.${2 * i + 1}`, `127.0.${network}.${2 * i + 2}`],
    startAt,
    deadlineMs: s.deadlineMs,
    attemptTimeoutMs: s.attemptTimeoutMs
  }, (mark) => {
    if (mark === 'start' && cpu0 === 0) cpu0 = cpuSeconds(t.pids())
    if (mark === 'end' && ++ends === loaders.length) cpu1 = cpuSeconds(t.pids())
  }) as StormResult))
  const established = establishedTo(t.port)
  const queue1 = listenQueueCounters()
  await Promise.all(loaders.map(async (l) => await l.run({ cmd: 'release' })))
  const samples = results.flatMap((r) => r.samples).sort((a, b) => a - b)
  const opened = samples.length
  return {
    opened,
    failed: results.reduce((n, r) => n + r.failed, 0),
    firstError: results.find((r) => r.firstError !== undefined)?.firstError,
    allOpenMs: Math.max(...results.map((r) => r.lastOpenMs)),
    p50: percentile(samples, 0.5),
    p99: percentile(samples, 0.99),
    max: samples[samples.length - 1] ?? NaN,
    refused: results.reduce((n, r) => n + r.refused, 0),
    cameBack: results.reduce((n, r) => n + r.cameBack, 0),
    cpuPerClientUs: (cpu1 - cpu0) / Math.max(1, opened) * 1e6,
    established,
    overflows: queue1.overflows - queue0.overflows,
    cookies: queue1.cookies - queue0.cookies
  }
}

export interface StormFigures {
  rounds: Map<string, StormRound[]>
  /** Per round, the first target's all-open time over the second's (K/A: above 1 when A is faster). */
  ratio: (a: string, b: string) => number[]
}

/** `rounds` storms per target, alternated (A K, K A, ...), each from fresh source addresses. */
export async function storms (targets: Target[], loaders: Loader[], s: StormSettings, log: (line: string) => void): Promise<StormFigures> {
  const rounds = new Map<string, StormRound[]>(targets.map((t) => [t.name, []]))
  let network = s.firstNetwork
  for (let round = 0; round < s.rounds; round++) {
    const order = round % 2 === 0 ? targets : [...targets].reverse()
    for (const t of order) {
      const r = await stormOnce(t, loaders, s, network++)
      rounds.get(t.name)?.push(r)
      if (r.failed > 0 || r.opened !== s.clients) log(`  ! ${t.name} storm: ${r.opened} of ${s.clients} open, ${r.failed} failed (${r.firstError ?? ''})`)
    }
  }
  const ratio = (a: string, b: string): number[] => {
    const x = rounds.get(a) ?? []
    const y = rounds.get(b) ?? []
    return x.map((r, i) => r.allOpenMs / (y[i]?.allOpenMs ?? NaN)).filter(Number.isFinite)
  }
  return { rounds, ratio }
}

export function stormRows (f: StormFigures): string[][] {
  const fig = (xs: number[], digits = 0): string => {
    const s: Spread = spread(xs)
    const n = (x: number): string => x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    return !Number.isFinite(s.median) ? 'n/a' : s.min === s.max ? n(s.median) : `${n(s.median)} (${n(s.min)}–${n(s.max)})`
  }
  return [...f.rounds].map(([name, rs]) => [
    name,
    fig(rs.map((r) => r.opened)),
    fig(rs.map((r) => r.allOpenMs)),
    fig(rs.map((r) => r.p50), 1),
    fig(rs.map((r) => r.p99)),
    fig(rs.map((r) => r.max)),
    fig(rs.map((r) => r.cpuPerClientUs)),
    fig(rs.map((r) => r.overflows)),
    fig(rs.map((r) => r.refused)),
    fig(rs.map((r) => r.cameBack)),
    fig(rs.map((r) => r.failed))
  ])
}

export const STORM_HEADER = ['target', 'open', 'all open after, ms', 'handshake p50 ms', 'p99 ms', 'max ms', 'server CPU µs per client', 'dropped by a full accept queue', '503 + Retry-After', 'came back', 'failed']
