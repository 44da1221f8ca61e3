/**
 * Which cores the servers and the load generators run on. On a machine of two or more cores, a per-core
 * measure pins every server process (all of Kamailio's too) to core 0 and every load generator, and the
 * bench itself, to the others: a server then never competes with its own load for a core, and its CPU
 * time is its own work. A whole-machine measure lets every process use every core. `taskset` (util-linux)
 * does the pinning; `--no-pin`, a single core or a missing taskset turn it off, and the run says so.
 */
import { execFileSync } from 'node:child_process'
import { availableParallelism } from 'node:os'

export interface Cores {
  /** Whether processes are pinned at all. */
  pinned: boolean
  /** Why they are not, when they are not. */
  why?: string
  /** taskset core lists: the servers' core, the load generators' cores, and every core. */
  server: string
  load: string
  all: string
}

export function cores (wanted: boolean): Cores {
  const n = availableParallelism()
  const all = `0-${n - 1}`
  const off = (why: string): Cores => ({ pinned: false, why, server: all, load: all, all })
  if (!wanted) return off('--no-pin')
  if (n < 2) return off('one core')
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' })
  } catch {
    return off('no taskset (util-linux)')
  }
  return { pinned: true, server: '0', load: n === 2 ? '1' : `1-${n - 1}`, all }
}

/**
 * Sets the cores of every thread of these processes (`taskset -a`). A process that has gone meanwhile is
 * skipped; any other failure throws, since a figure from a mis-pinned process would mislead.
 */
export function pin (pids: readonly number[], cpus: string): void {
  for (const pid of pids) {
    try {
      execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] })
    } catch (err) {
      const stderr = String((err as { stderr?: Buffer }).stderr ?? '')
      if (/No such process|failed to get pid/i.test(stderr)) continue
      throw new Error(`taskset -a -p -c ${cpus} ${pid}: ${stderr.trim() || (err as Error).message}`)
    }
  }
}
