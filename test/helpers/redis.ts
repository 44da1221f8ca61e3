import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { freePort } from './lwsc'
import { installCommand } from './system-packages'
import { ownedChild } from './children'

export const REDIS_HINT = `redis-server is needed for the cluster tests: ${installCommand(['redis-server'])}`

export interface RedisServer {
  port: number
  url: string
  pid: () => number
  /** Kills it (SIGKILL by default) and waits for the exit. */
  kill: (signal?: NodeJS.Signals) => Promise<void>
  /** Starts it again on the same port, empty: nothing was saved. */
  restart: () => Promise<void>
  stop: () => Promise<void>
}

/**
 * A real redis-server on 127.0.0.1 and a free port, with nothing saved to disk (`--save '' --appendonly
 * no`), so a restart comes back empty as after a crash without persistence; `extra` arguments are added
 * (`--replicaof`, say). Stopped by pid.
 */
export async function startRedis (extra: readonly string[] = []): Promise<RedisServer> {
  return await startRedisProcess('redis-server', REDIS_HINT, (port) => ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--loglevel', 'warning', ...extra])
}

/**
 * A Redis-protocol server (`command`, run with `args(port)`) on a free port, ready once it answers PING
 * there: redis-server, or redis-sentinel. `hint` says how to install it when it cannot be run.
 */
export async function startRedisProcess (command: string, hint: string, args: (port: number) => string[]): Promise<RedisServer> {
  const port = await freePort()
  let child: ChildProcess | null = null
  let output = ''
  const launch = async (): Promise<void> => {
    const proc = ownedChild(spawn(command, args(port), { stdio: ['ignore', 'pipe', 'pipe'] }))
    child = proc
    proc.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString() })
    proc.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString() })
    const spawned = await Promise.race([once(proc, 'spawn').then(() => true), once(proc, 'error').then(() => false)])
    if (!spawned) throw new Error(hint)
    // Ready once it answers PING on its port; bounded: 100 tries.
    for (let i = 0; ; i++) {
      if (proc.exitCode !== null) throw new Error(`${command} exited: ${output}`)
      if (await answersPing(port)) return
      if (i === 100) throw new Error(`${command} did not answer on ${port} within 10 s: ${output}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    const proc = child
    if (proc === null || proc.exitCode !== null || proc.signalCode !== null) return
    const exited = once(proc, 'exit')
    proc.kill(signal)
    await exited
  }
  await launch()
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pid: () => child?.pid ?? 0,
    kill,
    restart: async () => { await kill(); await launch() },
    stop: async () => { await kill('SIGTERM') }
  }
}

async function answersPing (port: number): Promise<boolean> {
  const net = await import('node:net')
  return await new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.setTimeout(1000, () => { socket.destroy(); resolve(false) })
    socket.once('connect', () => { socket.write('PING\r\n') })
    socket.once('data', (data: Buffer) => { socket.destroy(); resolve(data.toString().startsWith('+PONG')) })
    socket.once('error', () => { socket.destroy(); resolve(false) })
  })
}
