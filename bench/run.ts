/**
 * `npm run bench`: this plugin (A) side by side with plain fastify + @fastify/websocket (B), raw ws on
 * node:http (C, and C-copy: the control) and Kamailio 5.6 (K, when installed), in one run. Every target and
 * every load generator is its own process; per-core measures pin the servers to one core and the load to
 * the others (bench/pin.ts). Rounds are interleaved (each round visits every target, in a rotated order);
 * each figure is the median of the rounds with min–max, ratios are taken per round, and every measure runs
 * a control whose spread is its noise floor (bench/verdict.ts). Rounds per measure: bench/params.ts.
 *
 *   npm run bench                       rtt, handshakes, storm, idle, registry, lwsc, cluster (≤ 15 minutes)
 *   npm run bench:more                  message sizes and the whole machine (--only sizes,machine)
 *   npm run bench -- --twice            two full runs, then whether every verdict agreed (bench/twice.ts)
 *   npm run bench -- --smoke            tiny numbers, every target and measure once (test/bench-smoke)
 *   npm run bench -- --only rtt,storm   some measures: rtt, handshakes, storm, idle, registry, lwsc, cluster, sizes, machine
 *   npm run bench -- --targets A,C,C-copy   some targets: A, A-async, A-js, A2, B, C, C-copy, K
 *   npm run bench -- --only rtt --targets A,A-no-used,A-no-all,C,C-copy   with parts of A switched off (bench/ablate.ts)
 *   npm run bench -- --conns 50         the round-trip measure at these connection counts only
 *   npm run bench -- --no-pin           no taskset pinning
 *   npm run bench -- --alternated       per-core rounds one target at a time, instead of each paired with C
 *   npm run bench -- --no-cluster-redis A2's workers without cluster mode (by default they share a redis-server
 *                                       the bench starts, as `WORKERS=2` with `REDIS_URL` runs the example)
 *   WORKERS=4 npm run bench             A2 with 4 workers instead of 2
 *
 * See bench/README.md for the method and the latest tables.
 */
import { availableParallelism } from 'node:os'
import { targetOf } from './ablate'
import { Loader } from './loader'
import { measureHandshakes, measureMachine, measureRoundTrips, measureSizes, type Bench } from './measures-sockets'
import { measureCluster, measureIdle, measureLwsc, measureRegistry, measureStorm } from './measures-other'
import { DEFAULT_MEASURES, FULL, MORE_MEASURES, SMOKE as SMOKE_PARAMS } from './params'
import { cores } from './pin'
import { startRedis } from '../test/helpers/redis'
import { loadAverage, out, Report } from './report'
import { startKamailioTarget, startNodeTarget, type Target } from './servers'
import { twice } from './twice'

const argv = process.argv.slice(2)
const SMOKE = argv.includes('--smoke')
const listArg = (flag: string): Set<string> | null => { const i = argv.indexOf(flag); return i === -1 ? null : new Set(argv[i + 1].split(',')) }
// The smoke run checks every measure, those of bench:more too.
const MEASURES = listArg('--only') ?? new Set(SMOKE ? [...DEFAULT_MEASURES, ...MORE_MEASURES] : DEFAULT_MEASURES)
const wants = (measure: string): boolean => MEASURES.has(measure)
/** Targets only the measures of bench:more compare. */
const MORE_TARGETS = ['A-js', 'A2']
const TARGETS = listArg('--targets') ?? new Set(['A', 'A-async', 'B', 'C', 'C-copy', 'K', ...(wants('sizes') || wants('machine') ? MORE_TARGETS : [])])
const CONNS = listArg('--conns')
const P = SMOKE ? SMOKE_PARAMS : CONNS === null ? FULL : { ...FULL, rtt: { ...FULL.rtt, conns: [...CONNS].map(Number) } }

function hasBufferutil (): boolean {
  try {
    require.resolve('bufferutil')
    return true
  } catch {
    return false
  }
}

async function startTargets (stops: Array<() => Promise<void> | void>): Promise<Target[]> {
  const targets: Target[] = []
  const add = (t: Target): void => { stops.push(t.stop); targets.push(t) }
  let redisUrl: string | undefined
  if (!argv.includes('--no-cluster-redis') && TARGETS.has('A2')) {
    // Cluster mode (SPEC §7): A2's workers are nodes of one registry through this Redis (bench/target.ts).
    const redis = await startRedis()
    stops.push(redis.stop)
    redisUrl = redis.url
    out(`Cluster mode: A2's workers share the Redis at ${redis.url}.`)
    out()
  }
  const node: Array<[string, Parameters<typeof startNodeTarget>[0], Record<string, string>]> = [
    ['A', 'A', {}], ['A-async', 'A-async', {}], ['A-js', 'A', { WS_NO_BUFFER_UTIL: '1' }],
    ['A2', 'A2', { WORKERS: process.env.WORKERS ?? '2', ...(redisUrl === undefined ? {} : { BENCH_REDIS: redisUrl }) }],
    ['B', 'B', {}], ['C', 'C', {}], ['C-copy', 'C', {}]
  ]
  for (const [name, kind, env] of node) if (TARGETS.has(name)) add(await startNodeTarget(kind, name, env))
  // A or A-async with parts of the message path switched off (bench/ablate.ts): the round-trip measure
  // compares them with the rest.
  for (const name of TARGETS) {
    if (!/^A(-async)?-no-|^C-beside-/.test(name)) continue
    const { kind, env } = targetOf(name)
    add(await startNodeTarget(kind, name, env))
  }
  const k = TARGETS.has('K') ? await startKamailioTarget('K', 2, SMOKE) : 'not asked for (--targets)'
  if (typeof k === 'string') {
    out(`Target K skipped: ${k}`)
    out()
  } else {
    add(k)
  }
  return targets
}

/**
 * Paired rounds pair every target with C: one more C process for each pair of a round past the first, so
 * that each pair's C is as fresh as its target (observe.ts `inRounds`). Named C: their figures are C's.
 */
async function startSpareRefs (targets: Target[], paired: boolean, stops: Array<() => Promise<void> | void>): Promise<Target[]> {
  if (!paired || !targets.some((t) => t.name === 'C')) return []
  // --smoke: one spare, enough to take that path, not one per pair (its figures are not figures).
  const spares = await Promise.all(Array.from({ length: SMOKE ? 1 : Math.max(0, targets.length - 2) }, async () => await startNodeTarget('C', 'C')))
  for (const t of spares) stops.push(t.stop)
  return spares
}

async function main (): Promise<void> {
  const started = Date.now()
  const stops: Array<() => Promise<void> | void> = []
  const where = cores(!argv.includes('--no-pin'))
  try {
    out(`# fastify-sip-ws bench — ${new Date().toISOString()}, Node ${process.version}, ${SMOKE ? 'SMOKE (tiny numbers, not figures)' : `measures: ${[...MEASURES].join(', ')}`}`)
    out()
    out(`Load average (1, 5, 15 min) at the start: ${loadAverage()}, on ${availableParallelism()} cores.`)
    out()
    out(where.pinned
      ? `Pinning: servers on core ${where.server}, load generators on core${where.load.length > 1 ? 's' : ''} ${where.load} (taskset), except where a measure says whole machine.`
      : `Pinning: off (${where.why ?? ''}); every process may use every core.`)
    out()
    out(argv.includes('--alternated')
      ? 'Per-core rounds: alternated, one target at a time.'
      : 'Per-core rounds: paired. Each target runs at the same time as C, both on the server core, each with its own load generator; ratios to C come from that shared window (C-copy paired with C is the control).')
    out()
    const targets = await startTargets(stops)
    out(`Targets: ${targets.map((t) => `${t.name} on 127.0.0.1:${t.port}`).join(', ')}`)
    out()
    const loaders = await Promise.all(Array.from({ length: P.loaders }, async () => await Loader.start()))
    stops.push(() => { for (const l of loaders) l.stop() })
    const paired = !argv.includes('--alternated')
    const b: Bench = { P, cores: where, report: new Report(), targets, loaders, paired, spareRefs: await startSpareRefs(targets, paired, stops) }
    const byName = (name: string): Target | undefined => targets.find((t) => t.name === name)

    // Each measure says how long it took: npm run bench must stay within 15 minutes.
    const timed = async (measure: string, run: () => Promise<void> | void): Promise<void> => {
      if (!wants(measure)) return
      const t0 = Date.now()
      await run()
      out(`(${measure}: ${Math.round((Date.now() - t0) / 1000)} s)`)
      out()
    }
    await timed('rtt', async () => { await measureRoundTrips(b) })
    await timed('handshakes', async () => { await measureHandshakes(b) })
    await timed('storm', async () => { await measureStorm(b) })
    await timed('sizes', async () => { await measureSizes(b, hasBufferutil()) })
    await timed('machine', async () => { await measureMachine(b) })
    await timed('idle', async () => { await measureIdle(b) })
    await timed('registry', () => { measureRegistry(b) })
    const [a, c] = [byName('A'), byName('C')]
    if (a !== undefined && c !== undefined) await timed('lwsc', async () => { await measureLwsc(b, c, a, byName('K'), loaders[0]) })
    await timed('cluster', async () => { await measureCluster(SMOKE) })
    b.report.printGoals()
    out(`Load average at the end: ${loadAverage()}. Bench took ${Math.round((Date.now() - started) / 1000)} s.`)
  } finally {
    for (const stop of stops.reverse()) await stop()
  }
}

const run = argv.includes('--twice') ? async () => { process.exitCode = await twice(argv.filter((a) => a !== '--twice')) } : main
run().catch((err: unknown) => {
  process.stderr.write(`${String((err as Error).stack ?? err)}\n`)
  process.exitCode = 1
})
