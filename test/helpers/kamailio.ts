import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { promisify } from 'node:util'
import { installCommand } from './system-packages'
import { ownedChild } from './children'

export const INSTALL_HINT = `Kamailio 5.6 with its WebSocket, lwsc, xhttp and json modules is needed for the interop tests: ${installCommand()}`

export interface Kamailio {
  port: number
  /** The main process (its children are the workers). */
  pid: number
  /** The end of what it printed, for failure messages. */
  log: () => string
  /** How many lines it printed that contain `text`. */
  count: (text: string) => number
  /** The lines it printed that contain `text`. */
  lines: (text: string) => string[]
  stop: () => Promise<void>
}

export interface KamailioOptions {
  /** Shared memory, MiB (-m): connections live there. */
  sharedMb?: number
  /** Private memory per process, MiB (-M). */
  privateMb?: number
  /** TCP worker processes (-N). */
  tcpWorkers?: number
  /** Listen on UDP too, on the same address and port (-l udp:...), for a SIP core over UDP. */
  udp?: boolean
  /** Names defined for the cfg's `#!ifdef` (-A NAME). */
  defines?: string[]
}

/**
 * Runs Kamailio in the foreground (-DD -E) on 127.0.0.1:`port` (TCP, and UDP when asked) with `cfg`, in a
 * temp dir, and resolves once its TCP listener accepts. Throws with the install command when kamailio or its modules are missing.
 */
export async function startKamailio (cfg: string, port: number, sizes: KamailioOptions = {}): Promise<Kamailio> {
  const { sharedMb = 64, privateMb = 8, tcpWorkers, udp = false, defines = [] } = sizes
  const defineArgs = defines.flatMap((name) => ['-A', name])
  try {
    await promisify(execFile)('kamailio', ['-c', ...defineArgs, '-f', cfg], { timeout: 20000 })
  } catch (err) {
    const e = err as { code?: string, stderr?: string, message: string }
    const why = e.code === 'ENOENT' ? 'kamailio is not on PATH' : (e.stderr ?? e.message).split('\n').filter((l) => /ERROR|error/.test(l)).slice(0, 5).join('\n')
    throw new Error(`${INSTALL_HINT}\n(${why})`)
  }
  const dir = await mkdtemp(join(tmpdir(), 'lwsc-kamailio-'))
  let output = ''
  const child: ChildProcess = ownedChild(spawn('kamailio', [
    ...defineArgs, '-f', cfg, '-l', `tcp:127.0.0.1:${port}`, ...(udp ? ['-l', `udp:127.0.0.1:${port}`] : []), '-DD', '-E', '-m', String(sharedMb), '-M', String(privateMb),
    ...(tcpWorkers === undefined ? [] : ['-N', String(tcpWorkers)]),
    '-P', join(dir, 'kamailio.pid'), '-Y', dir, '-w', dir
  ], { stdio: ['ignore', 'pipe', 'pipe'] }))
  child.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const exited = once(child, 'exit')
  const log = (): string => output.slice(-4000)
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      const killer = setTimeout(() => { child.kill('SIGKILL') }, 5000)
      await exited
      clearTimeout(killer)
    }
    await rm(dir, { recursive: true, force: true })
  }
  // Ready when the listener accepts; bounded: 100 tries, 100 ms apart at most.
  for (let i = 0; ; i++) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await stop()
      throw new Error(`kamailio exited during start-up:\n${log()}`)
    }
    if (await canConnect(port)) break
    if (i === 100) {
      await stop()
      throw new Error(`kamailio did not listen on 127.0.0.1:${port} within 10 s:\n${log()}`)
    }
    await delay(100)
  }
  const lines = (text: string): string[] => output.split('\n').filter((line) => line.includes(text))
  return { port, pid: child.pid ?? 0, log, count: (text) => lines(text).length, lines, stop }
}

/** Whether 127.0.0.1:`port` accepts a TCP connection now. */
async function canConnect (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => { socket.destroy(); resolve(false) })
  })
}
