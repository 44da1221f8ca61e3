/**
 * The bench's targets as processes: Node targets forked from bench/target.ts, Kamailio started through
 * test/helpers/kamailio.ts, and the redis-server that A2's workers share in cluster mode.
 */
import { execFile, fork, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { promisify } from 'node:util'
import { canConnect, startKamailio, type Kamailio } from '../test/helpers/kamailio'
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
}

const TSX = ['--import', 'tsx']

export async function startNodeTarget (kind: TargetKind, name: string, env: Record<string, string> = {}): Promise<Target> {
  const child = fork(join(__dirname, 'target.ts'), [kind], { execArgv: [...TSX, '--expose-gc'], env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const [first] = await once(child, 'message') as [TargetReply]
  if (!('port' in first)) throw new Error(`target ${name} did not start`)
  return {
    name,
    port: first.port,
    pids: () => processTree(child.pid ?? 0),
    settleMs: 0,
    memory: async () => {
      child.send({ cmd: 'mem' })
      const [reply] = await once(child, 'message') as [{ mem: TargetMemory }]
      return reply.mem.rss
    },
    stop: async () => { child.kill(); if (child.exitCode === null) await once(child, 'exit') }
  }
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
  const response = await fetch(`http://127.0.0.1:${port}/RPC`, { method: 'POST', body: JSON.stringify({ jsonrpc: '2.0', method: 'core.shmmem', id: 1 }) })
  const body = await response.json() as { result?: { real_used?: number } }
  if (body.result?.real_used === undefined) throw new Error(`core.shmmem: unexpected answer ${JSON.stringify(body)}`)
  return body.result.real_used
}

export interface Redis { url: string, pid: number, stop: () => Promise<void> }

/** A throw-away redis-server on a free 127.0.0.1 port, without persistence, stopped by pid. */
export async function startRedis (): Promise<Redis> {
  await promisify(execFile)('redis-server', ['--version']).catch(() => {
    throw new Error('redis-server is not installed (Debian package redis-server)')
  })
  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'bench-redis-'))
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' })
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      await once(child, 'exit')
    }
    await rm(dir, { recursive: true, force: true })
  }
  // Ready when it accepts: bounded to 50 tries, 100 ms apart.
  for (let i = 0; ; i++) {
    if (await canConnect(port)) break
    if (i === 50 || child.exitCode !== null) {
      await stop()
      throw new Error(`redis-server did not listen on 127.0.0.1:${port}`)
    }
    await delay(100)
  }
  return { url: `redis://127.0.0.1:${port}`, pid: child.pid ?? 0, stop }
}
