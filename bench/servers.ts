/**
 * The bench's targets as processes: Node targets forked from bench/target.ts and Kamailio started through
 * test/helpers/kamailio.ts.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { jsonRpc } from '../test/helpers/json-rpc'
import { startKamailio, type Kamailio } from '../test/helpers/kamailio'
import { freePort } from '../test/helpers/lwsc'
import { processTree } from './proc'
import type { TargetKind, TargetMemory, TargetReply } from './target'

export interface Target {
  name: string
  port: number
  /** Every process of the target now (Kamailio's workers, A2's primary and workers). */
  pids: () => number[]
  memory: () => Promise<number>
  /** How long memory must stop falling before a baseline is taken (Kamailio frees connections late). */
  settleMs: number
  stop: () => Promise<void>
  /** A Node target's IPC: sends a command, resolves with its answer (bench/target.ts lists them). */
  ask?: <T>(command: object) => Promise<T>
  /** A Node target: a fresh process in place of this one (its port changes). */
  restart?: () => Promise<void>
}

const TSX = ['--import', 'tsx']

/** One Node target process: forked, listening, and its IPC. */
async function forkTarget (kind: TargetKind, name: string, env: Record<string, string>): Promise<{ child: ChildProcess, port: number }> {
  const flags = (process.env.BENCH_TARGET_FLAGS ?? '').split(' ').filter((f) => f !== '')
  const child = fork(join(__dirname, 'target.ts'), [kind], { execArgv: [...TSX, '--expose-gc', ...flags], env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  // A target that dies at start (a bad option, Redis away for A2) must fail the bench, not hang it.
  const [first] = await Promise.race([
    once(child, 'message') as Promise<[TargetReply]>,
    once(child, 'exit').then(([code]) => { throw new Error(`target ${name} exited (${String(code)}) before it listened`) })
  ])
  if (!('port' in first)) throw new Error(`target ${name} did not start`)
  return { child, port: first.port }
}

async function stopChild (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill()
  await exited
}

/**
 * A Node target. `restart` replaces its process with a fresh one (on a new port): a process's own luck
 * (where its heap and code landed, what its JIT decided) moved its CPU per round trip by several percent,
 * so the per-core measures start fresh processes for every round and that luck averages out.
 */
export async function startNodeTarget (kind: TargetKind, name: string, env: Record<string, string> = {}): Promise<Target> {
  let { child, port } = await forkTarget(kind, name, env)
  const ask = async <T>(command: object): Promise<T> => {
    child.send(command)
    const [reply] = await once(child, 'message') as [T]
    return reply
  }
  const target: Target = {
    name,
    port,
    pids: () => processTree(child.pid ?? 0),
    settleMs: 0,
    memory: async () => (await ask<{ mem: TargetMemory }>({ cmd: 'mem' })).mem.rss,
    ask,
    stop: async () => { await stopChild(child) },
    restart: async () => {
      await stopChild(child);
      ({ child, port } = await forkTarget(kind, name, env))
      target.port = port
    }
  }
  return target
}

/** Kamailio with `workers` TCP workers; a string saying why when it cannot run here. */
export async function startKamailioTarget (name: string, workers: number, smoke: boolean): Promise<Target | string> {
  let k: Kamailio
  try {
    // Shared memory sized for the idle measure (about 83 KB a connection, and a round's connections are
    // freed only 5 s after they close).
    k = await startKamailio(join(__dirname, 'kamailio.cfg'), await freePort(), { sharedMb: smoke ? 256 : 4096, privateMb: 16, tcpWorkers: workers })
  } catch (err) {
    return (err as Error).message.split('\n')[0]
  }
  const port = k.port
  return { name, port, pids: () => processTree(k.pid), memory: async () => await kamailioSharedMemory(port), settleMs: 6000, stop: k.stop }
}

/**
 * Kamailio keeps connections in its shared memory, whose pages stay resident once touched, so its RSS
 * says nothing about connections open now; its own count of shared memory in use (`core.shmmem`,
 * real_used: allocations plus allocator overhead) does.
 */
async function kamailioSharedMemory (port: number): Promise<number> {
  const { real_used: used } = await jsonRpc<{ real_used?: number }>(port, 'core.shmmem')
  if (used === undefined) throw new Error('core.shmmem: no real_used in the answer')
  return used
}
