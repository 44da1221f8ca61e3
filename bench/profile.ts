/**
 * `npm run bench:profile`: where a target's CPU time goes under load, from `node --cpu-prof`. Each target
 * runs alone, pinned like the per-core measures (server on core 0, load on the others), with 50
 * connections of round trips for `--seconds`; its profile's samples are then summed by where the code
 * lives. Shares are of the samples in which the target was not idle, so they hold however busy the rest
 * of the machine was.
 *
 *   npm run bench:profile
 *   npm run bench:profile -- --targets A,C --seconds 10 --size 65536 --top 20
 *   npm run bench:profile -- --keep DIR      keep the .cpuprofile files (Chrome DevTools opens them)
 *   npm run bench:profile -- --handshakes    the handshake path instead: 20 lanes opening and closing
 *   npm run bench:profile -- --inclusive lib/,fastify   inclusive shares of the functions whose name or file has these
 */
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { copyFile, mkdir, readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { type Loader, withLoader } from './loader'
import { cores, pin } from './pin'
import { processTree } from './proc'
import type { TargetKind, TargetReply } from './target'

const argv = process.argv.slice(2)
const arg = (flag: string, fallback: string): string => { const i = argv.indexOf(flag); return i === -1 ? fallback : argv[i + 1] }
const TARGETS = arg('--targets', 'A,B,C').split(',') as TargetKind[]
const SECONDS = Number(arg('--seconds', '8'))
const SIZE = Number(arg('--size', '0'))
const TOP = Number(arg('--top', '15'))
const KEEP = arg('--keep', '')
const HANDSHAKES = argv.includes('--handshakes')
const INCLUSIVE = arg('--inclusive', '')
const ROOT = join(__dirname, '..')

interface ProfileNode { id: number, callFrame: { functionName: string, url: string }, children?: number[] }
interface Profile { nodes: ProfileNode[], startTime: number, samples: number[], timeDeltas: number[] }

/** Where a function's code lives. */
function area (url: string, fn: string): string {
  if (fn === '(idle)' || fn === '(program)' || fn === '(garbage collector)') return fn
  if (url === '') return 'native (V8 builtins, C++)'
  if (url.startsWith('node:')) return 'Node core (node:*)'
  const path = url.replace(/^file:\/\//, '')
  if (path.includes('/node_modules/ws/')) return 'ws'
  if (path.includes('/node_modules/')) return 'other packages'
  if (path.startsWith(join(ROOT, 'lib'))) return 'this plugin (lib/)'
  if (path.startsWith(join(ROOT, 'bench'))) return 'the bench\'s app code (bench/)'
  return 'other'
}

/**
 * Sums the samples taken inside the measured window, `from`–`to` in microseconds of the monotonic clock
 * (V8 stamps samples with it, and process.hrtime() reads it), so start-up is left out.
 */
function summarise (profile: Profile, from: number, to: number): { areas: Array<[string, number]>, functions: Array<[string, number]>, inclusive: Array<[string, number]>, busyMs: number } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const child of n.children ?? []) parent.set(child, n.id)
  const nameOf = (id: number): string => {
    const { functionName, url } = (byId.get(id) as ProfileNode).callFrame
    return `${functionName === '' ? '(anonymous)' : functionName} ${url.replace(/^file:\/\//, '').replace(ROOT + '/', '')}`
  }
  const self = new Map<number, number>()
  let at = profile.startTime
  profile.samples.forEach((id, i) => {
    at += profile.timeDeltas[i] ?? 0
    if (at >= from && at <= to) self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
  })
  const areas = new Map<string, number>()
  const functions = new Map<string, number>()
  // Each function with everything it called: a sample counts once for every function on its stack.
  const inclusive = new Map<string, number>()
  let busy = 0
  for (const [id, us] of self) {
    const { functionName, url } = (byId.get(id) as ProfileNode).callFrame
    const where = area(url, functionName)
    if (where === '(idle)') continue
    busy += us
    areas.set(where, (areas.get(where) ?? 0) + us)
    functions.set(nameOf(id), (functions.get(nameOf(id)) ?? 0) + us)
    const onStack = new Set<string>()
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) onStack.add(nameOf(at))
    for (const name of onStack) inclusive.set(name, (inclusive.get(name) ?? 0) + us)
  }
  const sorted = (m: Map<string, number>): Array<[string, number]> => [...m].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, v / busy])
  return { areas: sorted(areas), functions: sorted(functions), inclusive: sorted(inclusive).filter(([name]) => !name.startsWith('(root)')), busyMs: busy / 1000 }
}

async function profileOne (kind: TargetKind, loader: Loader, dir: string): Promise<void> {
  const profDir = join(dir, kind)
  const child = fork(join(__dirname, 'target.ts'), [kind], { execArgv: ['--import', 'tsx', '--cpu-prof', `--cpu-prof-dir=${profDir}`], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const [reply] = await once(child, 'message') as [TargetReply]
  if (!('port' in reply)) throw new Error(`${kind} did not start`)
  const where = cores(true)
  if (where.pinned) { pin(processTree(child.pid ?? 0), where.server); pin([loader.pid, process.pid], where.load) }
  const window = [0, 0]
  const micros = (): number => Number(process.hrtime.bigint() / 1000n)
  const onMark = (mark: 'start' | 'end'): void => { window[mark === 'start' ? 0 : 1] = micros() }
  const localAddresses = Array.from({ length: 20 }, (_, i) => `127.0.0.${20 + i}`)
  // Handshakes: a first pass warms the path up, the second is the one summed.
  if (HANDSHAKES) await loader.run({ cmd: 'handshakes', port: reply.port, concurrency: 20, seconds: 1, localAddresses })
  const result = HANDSHAKES
    ? await loader.run({ cmd: 'handshakes', port: reply.port, concurrency: 20, seconds: SECONDS, localAddresses }, onMark)
    : await loader.run({ cmd: 'rtt', port: reply.port, conns: 50, warmupMs: 1000, seconds: SECONDS, localAddress: '127.0.0.2', size: SIZE }, onMark)
  if (result.failed > 0) throw new Error(`${kind}: ${result.failed} failed (${result.firstError ?? ''})`)
  // A clean exit writes the profile.
  child.send({ cmd: 'stop' })
  await once(child, 'exit')
  const [file] = (await readdir(profDir)).filter((f) => f.endsWith('.cpuprofile'))
  if (KEEP !== '') { await mkdir(KEEP, { recursive: true }); await copyFile(join(profDir, file), join(KEEP, `${kind}.cpuprofile`)) }
  const { areas, functions, inclusive, busyMs } = summarise(JSON.parse(await readFile(join(profDir, file), 'utf8')) as Profile, window[0], window[1])
  const pct = (x: number): string => `${(x * 100).toFixed(1)}%`
  const op = HANDSHAKES ? 'handshake' : 'round trip'
  process.stdout.write(`### ${kind}: ${Math.round(result.done / result.seconds).toLocaleString('en-US')} ${op}s/s, ${Math.round(busyMs).toLocaleString('en-US')} ms of busy samples in the window (${(busyMs * 1000 / result.done).toFixed(1)} µs a ${op})\n\n`)
  process.stdout.write('| where | share of busy samples |\n|---|---|\n')
  for (const [name, share] of areas) process.stdout.write(`| ${name} | ${pct(share)} |\n`)
  process.stdout.write(`\nTop ${TOP} functions (self):\n\n| function | share |\n|---|---|\n`)
  for (const [name, share] of functions.slice(0, TOP)) process.stdout.write(`| ${name} | ${pct(share)} |\n`)
  process.stdout.write(`\nTop ${TOP} functions with what they call (inclusive)${INCLUSIVE === '' ? '' : `, named ${INCLUSIVE}`}:\n\n| function | share |\n|---|---|\n`)
  const wanted = INCLUSIVE === '' ? inclusive : inclusive.filter(([name]) => INCLUSIVE.split(',').some((w) => name.includes(w)))
  for (const [name, share] of wanted.slice(0, TOP)) process.stdout.write(`| ${name} | ${pct(share)} |\n`)
  process.stdout.write('\n')
}

withLoader('bench-profile-', async (loader, dir) => {
  process.stdout.write(HANDSHAKES
    ? `# CPU profiles (node --cpu-prof), handshakes on 20 lanes (open, then a clean close), ${SECONDS} s\n\n`
    : `# CPU profiles (node --cpu-prof), 50 connections, ${SECONDS} s, ${SIZE === 0 ? 'bare OPTIONS' : `${SIZE}-byte messages`}\n\n`)
  for (const kind of TARGETS) await profileOne(kind, loader, dir)
})
