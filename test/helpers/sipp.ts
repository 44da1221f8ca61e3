import { type ChildProcess, spawn } from 'node:child_process'
import dgram from 'node:dgram'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { within } from './pool'
import { ownedChild } from './children'

export const SIPP = '/usr/bin/sipp'
export const SIPP_HINT = `${SIPP} is missing: apt-get install sip-tester (CI's .ci/run does this)`
export const SCENARIOS = join(__dirname, '..', 'fixtures', 'sipp')

export interface SippOptions {
  /** `ip:port` to send to; none for a scenario that starts by receiving. */
  remote?: string
  /** Local UDP port (-p). */
  port: number
  /** The Request-URI user, `[service]` (-s). */
  service?: string
  /** `[name]` keywords of the scenario (-key name value). */
  keys?: Record<string, string>
  /** Global bound on the run (-timeout), ms. */
  timeoutMs?: number
}

export interface Sipp {
  pid: number
  /** Everything it printed, for failure messages. */
  output: () => string
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
  const dir = await mkdtemp(join(tmpdir(), 'sipp-'))
  const timeoutMs = options.timeoutMs ?? 30000
  const args = [
    ...(options.remote === undefined ? [] : [options.remote]),
    '-sf', join(SCENARIOS, scenario), '-i', '127.0.0.1', '-mi', '127.0.0.1', '-p', String(options.port),
    ...(process.env.SIPP_TRACE === undefined ? [] : ['-trace_msg']),
    '-m', '1', '-nostdin', '-timeout', `${Math.ceil(timeoutMs / 1000)}s`, '-timeout_error', '-trace_err',
    '-s', options.service ?? 'service',
    ...Object.entries(options.keys ?? {}).flatMap(([name, value]) => ['-key', name, value])
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
    child.once('exit', (code, signal) => { resolve(code ?? (signal === null ? -1 : 128)) })
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
  // Its errors come first, then screens of statistics.
  const tail = (): string => {
    const lines = output.split('\n').filter((l) => l.trim() !== '')
    return [...lines.filter((l) => /error|warning|unexpected|aborted/i.test(l)).slice(0, 10), ...lines.slice(-12)].join('\n')
  }
  const printed = async (text: string, ms = 10000): Promise<string> => {
    const line = output.split('\n').find((l) => l.includes(text))
    if (line !== undefined) return line.trim()
    return await within(new Promise<string>((resolve) => { lineWaiters.push({ text, resolve }) }), ms, () => `sipp ${scenario} to print ${text}:\n${tail()}`)
  }
  // Ready when its port is taken; bounded: 100 tries, 50 ms apart at most.
  for (let i = 0; ; i++) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await stop()
      throw new Error(`sipp ${scenario} exited during start-up:\n${tail()}`)
    }
    if (!(await udpPortFree(options.port))) break
    if (i === 100) {
      await stop()
      throw new Error(`sipp ${scenario} did not bind 127.0.0.1:${options.port} within 5 s:\n${tail()}`)
    }
    await delay(50)
  }
  return { pid: child.pid ?? 0, output: tail, exited, printed, stop }
}

/** Awaits the end of a sipp run and throws with its output unless the scenario passed. */
export async function sippPassed (sipp: Sipp, scenario: string, ms = 20000): Promise<void> {
  const status = await within(sipp.exited, ms, () => `sipp ${scenario} to finish:\n${sipp.output()}`)
  if (status !== 0) throw new Error(`sipp ${scenario} failed (exit ${status}):\n${sipp.output()}`)
}

async function udpPortFree (port: number): Promise<boolean> {
  const socket = dgram.createSocket('udp4')
  try {
    socket.bind(port, '127.0.0.1')
    await once(socket, 'listening')
    return true
  } catch {
    return false
  } finally {
    try { socket.close() } catch {}
  }
}
