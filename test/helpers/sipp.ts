import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { ownedChild } from './children'
import { freePort } from './lwsc'
import { installCommand } from './system-packages'
import { within } from './pool'

export const SIPP = '/usr/bin/sipp'
export const SIPP_HINT = `${SIPP} is missing: ${installCommand(['sip-tester'])}`
export const SCENARIOS = join(__dirname, '..', 'fixtures', 'sipp')

export interface SippOptions {
  /** `ip:port` to send to; none for a scenario that starts by receiving. */
  remote?: string
  /** Local UDP port (-p); by default one free for UDP, picked again should another process take it first. */
  port?: number
  /** The Request-URI user, `[service]` (-s). */
  service?: string
  /** `[name]` keywords of the scenario (-key name value). */
  keys?: Record<string, string>
  /** Global bound on the run (-timeout), ms. */
  timeoutMs?: number
  /** Its address: 127.0.0.1, or ::1 for IPv6. */
  host?: '127.0.0.1' | '::1'
  /** Calls to run (-m), 1 by default; with a `remote`, one at a time (-l 1). */
  calls?: number
  /** More of sipp's options: `-nr`, `-lost 20`, ... */
  extra?: string[]
}

export interface Sipp {
  pid: number
  /** Its local UDP port. */
  port: number
  /** What it printed that says what went wrong, and its last screen, for failure messages. */
  output: () => string
  /** Everything it printed. */
  printedAll: () => string
  /** Resolves with the exit status once it has ended (0: the scenario passed). */
  exited: Promise<number>
  /** Resolves once a line containing `text` was printed (a scenario's `<exec command="echo ...">`). */
  printed: (text: string, ms?: number) => Promise<string>
  stop: () => Promise<void>
}

/**
 * Runs one call of a sipp scenario from test/fixtures/sipp on 127.0.0.1, in a temp dir (sipp writes its
 * files there), and resolves once its UDP port is bound. Stopped by pid; the run is bounded by -timeout.
 */
export async function startSipp (scenario: string, options: SippOptions): Promise<Sipp> {
  // A port of our own choosing can still be taken by another process between the pick and sipp's bind:
  // then sipp exits at once with "Unable to bind main socket", and a new port is picked (bounded).
  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? await freePort('udp')
    try {
      return await launch(scenario, options, port)
    } catch (err) {
      if (options.port !== undefined || !(err instanceof PortTaken) || attempt === 3) throw err
    }
  }
}

class PortTaken extends Error {}

async function launch (scenario: string, options: SippOptions, port: number): Promise<Sipp> {
  const dir = await mkdtemp(join(tmpdir(), 'sipp-'))
  const timeoutMs = options.timeoutMs ?? 30000
  const host = options.host ?? '127.0.0.1'
  const args = [
    ...(options.remote === undefined ? [] : [options.remote]),
    '-sf', join(SCENARIOS, scenario), '-i', host, '-mi', host, '-p', String(port),
    ...(process.env.SIPP_TRACE === undefined ? [] : ['-trace_msg']),
    // A calling sipp makes its calls one after the other; an answering one takes them as they come.
    '-m', String(options.calls ?? 1), ...(options.remote === undefined ? [] : ['-l', '1']), '-nostdin', '-timeout', `${Math.ceil(timeoutMs / 1000)}s`, '-timeout_error', '-trace_err',
    '-s', options.service ?? 'service',
    ...Object.entries(options.keys ?? {}).flatMap(([name, value]) => ['-key', name, value]),
    ...options.extra ?? []
  ]
  let output = ''
  const lineWaiters: Array<{ text: string, resolve: (line: string) => void }> = []
  const child: ChildProcess = ownedChild(spawn(SIPP, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }))
  const onData = (chunk: Buffer): void => {
    output += chunk.toString()
    for (const waiter of [...lineWaiters]) {
      const line = output.split('\n').find((l) => l.includes(waiter.text))
      if (line !== undefined) {
        lineWaiters.splice(lineWaiters.indexOf(waiter), 1)
        waiter.resolve(line.trim())
      }
    }
  }
  child.stdout?.on('data', onData)
  child.stderr?.on('data', onData)
  const exited = new Promise<number>((resolve) => {
    // 'close', not 'exit': by then everything it printed has been read.
    child.once('close', (code, signal) => { resolve(code ?? (signal === null ? -1 : 128)) })
    child.once('error', (err) => { output += `\n${err.message}`; resolve(-1) })
  })
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      const killer = setTimeout(() => { child.kill('SIGKILL') }, 3000)
      await exited
      clearTimeout(killer)
    }
    // SIPP_TRACE=1 keeps sipp's directory, with its message trace, for a look after the run.
    if (process.env.SIPP_TRACE === undefined) await rm(dir, { recursive: true, force: true })
  }
  // Its errors come first (sipp's own lines, e.g. "Unable to bind main socket, errno = 98"), then screens of
  // statistics.
  const tail = (): string => {
    const lines = output.split('\n').filter((l) => l.trim() !== '')
    return [...lines.filter((l) => /error|errno|unable|warning|unexpected|aborted/i.test(l)).slice(0, 10), ...lines.slice(-12)].join('\n')
  }
  const printed = async (text: string, ms = 10000): Promise<string> => {
    const line = output.split('\n').find((l) => l.includes(text))
    if (line !== undefined) return line.trim()
    return await within(new Promise<string>((resolve) => { lineWaiters.push({ text, resolve }) }), ms, () => `sipp ${scenario} to print ${text}:\n${tail()}`)
  }
  // Ready when it holds its port. Bounded: 100 looks, 50 ms apart at most.
  for (let i = 0; ; i++) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const status = await exited
      await stop()
      const message = `sipp ${scenario} exited (status ${status}) during start-up on port ${port}:\n${tail()}`
      throw /Unable to bind main socket/.test(output) ? new PortTaken(message) : new Error(message)
    }
    if (await holdsUdpPort(child.pid ?? 0, host, port)) break
    if (i === 100) {
      await stop()
      throw new Error(`sipp ${scenario} did not bind ${host} port ${port} within 5 s:\n${tail()}`)
    }
    await delay(50)
  }
  return { pid: child.pid ?? 0, port, output: tail, printedAll: () => output, exited, printed, stop }
}

/** Awaits the end of a sipp run and throws with its output unless the scenario passed. */
export async function sippPassed (sipp: Sipp, scenario: string, ms = 20000): Promise<void> {
  const status = await within(sipp.exited, ms, () => `sipp ${scenario} to finish:\n${sipp.output()}`)
  if (status !== 0) throw new Error(`sipp ${scenario} failed (exit ${status}):\n${sipp.output()}`)
}

/**
 * Whether process `pid` holds a UDP socket bound to `host`:`port`: Linux's /proc/net/udp (udp6 for ::1)
 * gives the socket's inode for that address (both in hex), and /proc/<pid>/fd whether the process has it
 * open. Only looked at, never bound, so the check cannot take the port from sipp, nor mistake another
 * holder for it.
 */
async function holdsUdpPort (pid: number, host: string, port: number): Promise<boolean> {
  const address = host === '::1' ? '00000000000000000000000001000000' : '0100007F'
  const local = `${address}:${port.toString(16).toUpperCase().padStart(4, '0')}`
  const table = await readFile(host === '::1' ? '/proc/net/udp6' : '/proc/net/udp', 'utf8')
  const inodes = new Set(table.split('\n').map((line) => line.trim().split(/\s+/)).filter((f) => f[1] === local).map((f) => `socket:[${f[9]}]`))
  if (inodes.size === 0) return false
  const fds = await readdir(`/proc/${pid}/fd`).catch(() => [])
  for (const fd of fds) {
    if (inodes.has(await readlink(`/proc/${pid}/fd/${fd}`).catch(() => ''))) return true
  }
  return false
}
