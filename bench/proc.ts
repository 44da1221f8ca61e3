// What /proc says about a target: CPU time and memory of its process tree, and its open connections.
import { readFileSync, readdirSync } from 'node:fs'

const CLOCK_TICKS = 100

function read (path: string): string | null {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return null
  }
}

/** `pid` and every descendant (Kamailio's workers are children of its main process). */
export function processTree (pid: number): number[] {
  const all = [pid]
  for (let i = 0; i < all.length; i++) {
    for (const task of readdirSafe(`/proc/${all[i]}/task`)) {
      const children = read(`/proc/${all[i]}/task/${task}/children`)
      if (children !== null) for (const child of children.trim().split(/\s+/)) if (child !== '') all.push(Number(child))
    }
  }
  return all
}

function readdirSafe (path: string): string[] {
  try {
    return readdirSync(path)
  } catch {
    return []
  }
}

/**
 * CPU seconds used so far by these processes, every thread of each (V8's GC and compiler threads, libuv's
 * pool), from the scheduler's own accounting (`/proc/<pid>/task/<tid>/schedstat`, nanoseconds). The
 * user + system ticks of `/proc/<pid>/stat` count in 10 ms steps, which is a few percent of a one-second
 * round; those are the fallback where schedstat is missing.
 */
export function cpuSeconds (pids: readonly number[]): number {
  let ns = 0
  let ticks = 0
  for (const pid of pids) {
    const tasks = readdirSafe(`/proc/${pid}/task`)
    // Schedstat when the kernel has it (some thread's file reads); a thread that ended since the listing is
    // skipped, not a reason to fall back to ticks for the whole process.
    const processNs = threadsNs(pid, tasks)
    if (processNs !== null) { ns += processNs; continue }
    const stat = read(`/proc/${pid}/stat`)
    if (stat === null) continue
    // Fields after the command name, which may itself hold spaces: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    ticks += Number(fields[11]) + Number(fields[12])
  }
  return ns / 1e9 + ticks / CLOCK_TICKS
}

/**
 * CPU seconds used so far by the threads of these processes other than each one's main thread: V8's
 * compiler and GC helpers, libuv's pool (schedstat, ns; 0 where the kernel has none). A fresh Node process
 * spends its first seconds compiling its hot path on them, so they tell whether a window held warm-up.
 */
export function helperCpuSeconds (pids: readonly number[]): number {
  let ns = 0
  for (const pid of pids) ns += threadsNs(pid, readdirSafe(`/proc/${pid}/task`).filter((task) => task !== String(pid))) ?? 0
  return ns / 1e9
}

/** Nanoseconds these threads of a process ran, from their schedstat; null when none of them has one. */
function threadsNs (pid: number, tasks: readonly string[]): number | null {
  let ns: number | null = null
  for (const task of tasks) {
    const line = read(`/proc/${pid}/task/${task}/schedstat`)
    if (line !== null) ns = (ns ?? 0) + Number(line.split(' ')[0])
  }
  return ns
}

/** What the kernel counts for a process tree: CPU split into user and system, page faults, context switches. */
export interface ProcCounters {
  /** CPU seconds in user space and in the kernel, every thread (10 ms ticks). */
  user: number
  system: number
  /** Page faults that needed no disk (a fresh page mapped in, say). */
  minorFaults: number
  /** Context switches: the thread waited (voluntary) or was preempted (involuntary), every thread. */
  voluntary: number
  involuntary: number
}

export function procCounters (pids: readonly number[]): ProcCounters {
  const c: ProcCounters = { user: 0, system: 0, minorFaults: 0, voluntary: 0, involuntary: 0 }
  for (const pid of pids) {
    const stat = read(`/proc/${pid}/stat`)
    if (stat === null) continue
    // Fields after the command name: minflt is field 10, utime 14, stime 15 (man 5 proc).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    c.minorFaults += Number(fields[7])
    c.user += Number(fields[11]) / CLOCK_TICKS
    c.system += Number(fields[12]) / CLOCK_TICKS
    for (const task of readdirSafe(`/proc/${pid}/task`)) {
      const status = read(`/proc/${pid}/task/${task}/status`) ?? ''
      c.voluntary += Number(/^voluntary_ctxt_switches:\s*(\d+)/m.exec(status)?.[1] ?? 0)
      c.involuntary += Number(/^nonvoluntary_ctxt_switches:\s*(\d+)/m.exec(status)?.[1] ?? 0)
    }
  }
  return c
}

/** b − a, field by field. */
export function procDelta (a: ProcCounters, b: ProcCounters): ProcCounters {
  return { user: b.user - a.user, system: b.system - a.system, minorFaults: b.minorFaults - a.minorFaults, voluntary: b.voluntary - a.voluntary, involuntary: b.involuntary - a.involuntary }
}

/** Established TCP connections whose local end is 127.0.0.1:`port` — the server's side of each. */
export function establishedTo (port: number): number {
  const text = read('/proc/net/tcp') ?? ''
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`
  let n = 0
  for (const line of text.split('\n')) {
    const cols = line.trim().split(/\s+/)
    if (cols[1] === local && cols[3] === '01') n++
  }
  return n
}

/** CPU seconds the whole machine has been busy (all cores: 2 s per second when both are full). */
export function machineBusySeconds (): number {
  const first = (read('/proc/stat') ?? '').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  // user nice system idle iowait irq softirq steal: everything but idle and iowait is work.
  const busy = first.slice(0, 8).reduce((a, b) => a + b, 0) - first[3] - first[4]
  return busy / CLOCK_TICKS
}

/**
 * The kernel's count (every socket of this network namespace) of connection attempts a listening socket
 * could not take at once: `overflows` (its accept queue was full: the SYN or the final ACK was dropped, and
 * the client tries again a second or more later) and `cookies` (SYN cookies sent: its SYN queue was full).
 */
export function listenQueueCounters (): { overflows: number, cookies: number } {
  const lines = (read('/proc/net/netstat') ?? '').split('\n').filter((l) => l.startsWith('TcpExt:'))
  if (lines.length < 2) return { overflows: NaN, cookies: NaN }
  const names = lines[0].split(/\s+/)
  const values = lines[1].split(/\s+/).map(Number)
  const at = (name: string): number => values[names.indexOf(name)] ?? NaN
  return { overflows: at('ListenOverflows'), cookies: at('SyncookiesSent') }
}
