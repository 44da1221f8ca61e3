// Cost of wsDump and of one keepalive sweep at 1k / 100k / 1M registry entries (no sockets).
// Run alone: npx tsx bench/registry.ts  (also measure 4 of `npm run bench`)
import { SingleProcess } from '../lib/cluster/single-process'
import { Connection } from '../lib/connection/connection'
import { Keepalive } from '../lib/connection/keepalive'
import { Registry } from '../lib/connection/registry'
import { Stats } from '../lib/connection/stats'
import { spread, type Spread } from './spread'

const noLog = { debug () {} } as never

const counters = new Stats(['sip']).forProtocol('sip')

function fill (n: number, now: number): Registry {
  const r = new Registry(new SingleProcess().ids)
  for (let i = 0; i < n; i++) {
    r.add(new Connection(r.nextId(), { remoteAddress: '10.0.0.1', remotePort: i & 0xffff, localAddress: '127.0.0.1', localPort: 80, transport: 'ws' }, 'sip', null, counters, now))
  }
  return r
}

/**
 * Median of `rounds` timings of `fn`, in microseconds. With `control`, each round times `fn` a second
 * time right after, and pushes the second timing over the first: the noise floor of these figures.
 */
function time (rounds: number, fn: () => void, control?: number[]): Spread {
  const samples: number[] = []
  for (let i = 0; i < rounds; i++) {
    const t0 = process.hrtime.bigint()
    fn()
    const t1 = process.hrtime.bigint()
    samples.push(Number(t1 - t0) / 1000)
    if (control === undefined) continue
    fn()
    control.push(Number(process.hrtime.bigint() - t1) / Number(t1 - t0))
  }
  return spread(samples)
}

export interface RegistryRow { measure: string, size: number, us: Spread }

/** The rows, and the control's per-round ratios (an identical dump timed twice, at the largest size). */
export function registryBench (sizes = [1_000, 100_000, 1_000_000], rounds = 101): { rows: RegistryRow[], control: number[] } {
  const rows: RegistryRow[] = []
  let control: number[] = []
  for (const n of sizes) {
    const now = Date.now()
    const r = fill(n, now)
    // Use half of them again so last-used order differs from id order.
    let i = 0
    for (const c of [...r.values()]) if (i++ % 2 === 0) r.touch(c, now + 1)
    control = []
    for (const order of ['id_hash', 'used_asc', 'used_desc'] as const) {
      const t = time(rounds, () => { r.dump(order, now) }, order === 'used_desc' ? control : undefined)
      rows.push({ measure: `wsDump('${order}')`, size: n, us: t })
    }
    // The keepalive queue: one batch of 50 silent connections per round at its head, heard a millisecond
    // apart, then every entry of the registry, heard later. Round b's tick is due for exactly batch b (the
    // earlier batches were probed and went to the tail), never for the busy entries behind.
    const timeoutMs = 180_000
    let probed = 0
    const k = new Keepalive({ mechanism: 1, timeoutMs, intervalMs: 1000, closeDead: true, verbose: false }, { probe: () => { probed++ }, expire: () => {} }, noLog)
    const start = now - rounds
    for (let b = 0; b < rounds; b++) {
      for (let j = 0; j < 50; j++) k.heard(new Connection(0, { remoteAddress: '10.0.0.2', remotePort: j, localAddress: '127.0.0.1', localPort: 80, transport: 'ws' }, 'sip', null, counters, 0), start + b)
    }
    for (const conn of r.values()) k.heard(conn, now + 1)
    const busy = time(rounds, () => { k.sweep(start - 1 + timeoutMs) })
    rows.push({ measure: 'keepalive tick, all busy', size: n, us: busy })
    let b = 0
    const due = time(rounds, () => { k.sweep(start + (b++) + timeoutMs) })
    if (probed !== 50 * rounds) throw new Error(`expected 50 probes a tick, got ${probed / rounds}`)
    rows.push({ measure: 'keepalive tick, 50 due', size: n, us: due })
  }
  return { rows, control }
}

if (require.main === module) {
  console.table(registryBench().rows.map((r) => ({ measure: r.measure, entries: r.size, median_us: +r.us.median.toFixed(1), min_us: +r.us.min.toFixed(1), max_us: +r.us.max.toFixed(1) })))
}
