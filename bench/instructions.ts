/**
 * `npm run bench:instructions`: CPU instructions per round trip, counted by valgrind's callgrind, for
 * targets A, B and C (and A-js, A without bufferutil). Unlike a rate, an instruction count does not depend
 * on what else the machine runs, so it shows what a change to the message path saves even on a busy
 * machine. It counts user-space instructions only (the kernel's send and receive paths are not in it) of
 * every thread of the target (V8's GC and compiler threads too).
 *
 * Each target runs under valgrind; a load generator (not under valgrind) opens 50 connections, runs a
 * warm-up of round trips (so V8 has optimised the path), then callgrind's counters are zeroed, exactly
 * `--count` more round trips run, and the counters are dumped. Needs valgrind (Debian `valgrind`).
 *
 *   npm run bench:instructions
 *   npm run bench:instructions -- --targets A,C --sizes 0,65536 --count 20000 --warmup 20000
 *   npm run bench:instructions -- --annotate 15     also the 15 functions with most instructions of each
 *   npm run bench:instructions -- --keep DIR        keep the callgrind dumps (and V8's perf maps) in DIR
 *   npm run bench:instructions -- --conns 2         2 connections instead of 50
 *
 * With --annotate, node runs with --perf-basic-prof, and the addresses callgrind could not name (code V8
 * compiled at run time) are named from the map V8 writes (/tmp/perf-<pid>.map).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { copyFile, mkdir, readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { type Loader, withLoader } from './loader'
import { targetOf } from './ablate'
import type { TargetReply } from './target'

const run = promisify(execFile)
const argv = process.argv.slice(2)
const arg = (flag: string, fallback: string): string => { const i = argv.indexOf(flag); return i === -1 ? fallback : argv[i + 1] }
const TARGETS = arg('--targets', 'A,B,C,A-js').split(',')
const SIZES = arg('--sizes', '0,4096,65536').split(',').map(Number)
const COUNT = Number(arg('--count', '20000'))
const WARMUP = Number(arg('--warmup', '20000'))
const ANNOTATE = Number(arg('--annotate', '0'))
const KEEP = arg('--keep', '')
// 50 connections by default; few (--conns 2) when comparing builds: every wakeup then carries the same number
// of messages, so the count does not move with how busy the rest of the machine keeps the load generator.
const CONNS = Number(arg('--conns', '50'))


interface Count {
  target: string
  size: number
  /** Instructions per round trip: all of them, then those of V8's GC and of its compilers. */
  perRoundTrip: number
  gc: number
  compiler: number
  top: string
}

// Who an entry of callgrind_annotate is, by name. The GC's work depends on how many collections fall in the
// window, which makes whole counts vary by several percent between runs; the rest is the message path.
const GC = /Heap|Scaveng|Marking|MarkCompact|Sweep|Evacuat|ObjectCache|RootScavenge|RememberedSet|heap::base|cppgc|MemoryChunk|ActiveSystemPages|GlobalHandles|SlotSet|BodyDescriptor|MemoryAllocator|Page::|WeakObjects|LocalHeap|Safepoint|MinorMC|PagedSpace|NewSpace|SemiSpace|LargeObjectSpace|FreeList|MainAllocator|ObjectStats/
const COMPILER = /compiler::|maglev|Turbofan|OptimizingCompile|Zone::|RegisterAllocat|LiveRange|InstructionSelector|CodeGenerator|Compiler::|Parser|Scanner|interpreter::|Deoptimiz/
// Entry points (main, the event loop, thread starts) come out with everything under them: left out.
const CALLERS = /\(below main\)|libc_start|:main$|NodeMainInstance|node::Start|SpinEventLoop|clone\.S|start_thread|0x000000000001ab70|Worker::Run|StartThread|PROGRAM TOTALS/

async function measure (name: string, size: number, loader: Loader, dir: string): Promise<Count> {
  const { kind, env } = targetOf(name)
  const outFile = join(dir, `${name}-${size}.%p`)
  // V8 also writes a log beside the map: into the temp dir, not the working tree.
  const perfMap = ANNOTATE > 0 ? ['--perf-basic-prof', '--no-logfile-per-isolate', `--logfile=${join(dir, 'v8.log')}`] : []
  const child = spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${outFile}`, process.execPath, ...perfMap, '--expose-gc', '--import', 'tsx', join(__dirname, 'target.ts'), kind], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe', 'ipc']
  })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  try {
    const [reply] = await once(child, 'message') as [TargetReply]
    if (!('port' in reply)) throw new Error(`${name} did not start`)
    const pid = String(child.pid)
    // A full GC before the warm-up, so that no major GC left half done from start-up weighs on one target's
    // window and not on another's. (One right before the window would make V8 compile the path again.)
    await fullGc(child)
    const result = await loader.run({ cmd: 'exact', port: reply.port, conns: CONNS, warmup: WARMUP, count: COUNT, localAddress: '127.0.0.2', size }, (mark) => {
      // Zero the counters when the window opens, dump them when it closes; the load goes on once each is done.
      run('callgrind_control', [mark === 'start' ? '-z' : '-d', pid]).then(() => { loader.go() }, (err: unknown) => {
        process.stderr.write(`callgrind_control failed: ${String(err)}\n`)
        process.exit(1)
      })
    })
    if (result.failed > 0) throw new Error(`${name}: ${result.failed} failed (${result.firstError ?? ''})`)
    // The dump is written by the target: wait for its file to be complete.
    const [file, totals] = await waitFor(async () => {
      const dumped = (await readdir(dir)).find((f) => f.startsWith(`${name}-${size}.${pid}.`))
      if (dumped === undefined) return undefined
      const total = /^(?:totals|summary): (\d+)/m.exec(await readFile(join(dir, dumped), 'utf8'))
      return total === null ? undefined : [join(dir, dumped), Number(total[1])] as const
    })
    const { rows, gc, compiler } = await annotate(file, pid)
    const top = rows.slice(0, ANNOTATE).map(([fn, ir]) => `${(ir / COUNT).toFixed(0).padStart(7)}  ${fn.slice(0, 150)}`).join('\n')
    if (KEEP !== '') {
      await mkdir(KEEP, { recursive: true })
      await copyFile(file, join(KEEP, `callgrind.${name}-${size}.${pid}`))
      await copyFile(`/tmp/perf-${pid}.map`, join(KEEP, `perf-${pid}.map`)).catch(() => {})
    }
    return { target: name, size, perRoundTrip: totals / COUNT, gc: gc / COUNT, compiler: compiler / COUNT, top }
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${stderr.slice(-2000)}`)
  } finally {
    child.kill()
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit')
  }
}

/** Asks the target for its memory, which it reads after two full GCs. */
async function fullGc (child: ChildProcess): Promise<void> {
  child.send({ cmd: 'mem' })
  await once(child, 'message')
}

/**
 * Every function's own instructions, most first (JIT-compiled ones named from V8's perf map when there is
 * one), and the sums of the GC's and the compilers'.
 */
async function annotate (file: string, pid: string): Promise<{ rows: Array<[string, number]>, gc: number, compiler: number }> {
  const map = (await readFile(`/tmp/perf-${pid}.map`, 'utf8').catch(() => '')).split('\n').map((line) => {
    const [start, size, ...name] = line.split(' ')
    return { start: parseInt(start, 16), end: parseInt(start, 16) + parseInt(size, 16), name: name.join(' ') }
  }).filter((e) => Number.isFinite(e.start)).sort((a, b) => a.start - b.start)
  const name = (address: number): string => {
    let lo = 0
    let hi = map.length - 1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      if (map[mid].end <= address) lo = mid + 1
      else if (map[mid].start > address) hi = mid - 1
      else return map[mid].name
    }
    return `0x${address.toString(16)}`
  }
  const { stdout } = await run('callgrind_annotate', ['--inclusive=no', '--threshold=100', file], { maxBuffer: 256 * 1024 * 1024 })
  const rows = new Map<string, number>()
  let gc = 0
  let compiler = 0
  for (const line of stdout.split('\n')) {
    const m = /^\s*([\d,]+) \([^)]*\)\s+(.*)$/.exec(line)
    if (m === null || CALLERS.test(m[2].replace(/ \[[^\]]*\]$/, ''))) continue
    const ir = Number(m[1].replace(/,/g, ''))
    const fn = m[2].replace(/^\?\?\?:0x([0-9a-f]+) \[\?\?\?\]$/, (_, hex: string) => `JS ${name(parseInt(hex, 16))}`).replace(/ \[[^\]]*\]$/, '')
    if (GC.test(fn)) gc += ir
    else if (COMPILER.test(fn)) compiler += ir
    rows.set(fn, (rows.get(fn) ?? 0) + ir)
  }
  return { rows: [...rows].sort((a, b) => b[1] - a[1]), gc, compiler }
}

async function waitFor<T> (probe: () => Promise<T | undefined>): Promise<T> {
  // Bounded: 300 tries, 100 ms apart.
  for (let i = 0; i < 300; i++) {
    const value = await probe()
    if (value !== undefined) return value
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error('callgrind dump did not appear within 30 s')
}

withLoader('bench-callgrind-', async (loader, dir) => {
  const counts: Count[] = []
  process.stdout.write(`# Instructions per round trip (callgrind), ${CONNS} connections, ${COUNT.toLocaleString('en-US')} round trips after ${WARMUP.toLocaleString('en-US')} of warm-up\n\n`)
  for (const size of SIZES) {
    for (const name of TARGETS) {
      const c = await measure(name, size, loader, dir)
      counts.push(c)
      process.stderr.write(`  ${name} ${size === 0 ? 'OPTIONS' : `${size} B`}: ${Math.round(c.perRoundTrip).toLocaleString('en-US')} (GC ${Math.round(c.gc).toLocaleString('en-US')})\n`)
    }
  }
  const rest = (c: Count): number => c.perRoundTrip - c.gc - c.compiler
  const n = (x: number): string => Math.round(x).toLocaleString('en-US')
  process.stdout.write('"Without GC and compilers" is the message path itself: it repeats within about 1%, where the whole\n')
  process.stdout.write('count moves by several percent with how many collections fall in the window.\n\n')
  process.stdout.write('| message | target | instructions per round trip | vs C | of which V8\'s GC | compilers | without GC and compilers | vs C |\n|---|---|---|---|---|---|---|---|\n')
  for (const c of counts) {
    const ref = counts.find((r) => r.target === 'C' && r.size === c.size)
    const vs = (f: (x: Count) => number): string => ref === undefined ? '' : (f(c) / f(ref)).toFixed(3)
    process.stdout.write(`| ${c.size === 0 ? 'bare OPTIONS' : `${c.size.toLocaleString('en-US')} B`} | ${c.target} | ${n(c.perRoundTrip)} | ${vs((x) => x.perRoundTrip)} | ${n(c.gc)} | ${n(c.compiler)} | ${n(rest(c))} | ${vs(rest)} |\n`)
  }
  for (const c of counts) {
    if (c.top !== '') process.stdout.write(`\n${c.target}, ${c.size === 0 ? 'bare OPTIONS' : `${c.size} B`}: instructions per round trip in each function's own code\n\n\`\`\`\n${c.top}\n\`\`\`\n`)
  }
})
