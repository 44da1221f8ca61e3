import { type ChildProcess, fork } from 'node:child_process'
import { join } from 'node:path'
import type { SipWsOptions } from '../../lib'
import { until, within } from './pool'
import { ownedChild } from './children'

export interface NodeEvent { event: string, [field: string]: unknown }

/** A cluster node in its own process (test/fixtures/cluster-node.ts). */
export interface NodeProcess {
  port: number
  url: string
  instance: string
  pid: number
  /** What its hooks saw, in order. */
  events: NodeEvent[]
  /** Resolves with the first event (seen or to come) that `match` accepts. */
  next: (match: (e: NodeEvent) => boolean, ms: number, what: string) => Promise<NodeEvent>
  call: <T = unknown>(name: string, ...args: unknown[]) => Promise<T>
  signal: (signal: NodeJS.Signals) => void
  /** Closes it (app.close()) or, when it is gone already, just waits for its exit. */
  stop: () => Promise<void>
}

export async function startNode (redisUrl: string, options: SipWsOptions = {}): Promise<NodeProcess> {
  const child: ChildProcess = ownedChild(fork(join(__dirname, '..', 'fixtures', 'cluster-node.ts'), [redisUrl, JSON.stringify(options)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
  const events: NodeEvent[] = []
  const waiters: Array<{ match: (e: NodeEvent) => boolean, resolve: (e: NodeEvent) => void }> = []
  const answers = new Map<number, (m: { result?: unknown, error?: { message: string, code?: string } }) => void>()
  let seq = 0
  const ready = new Promise<{ port: number, instance: string }>((resolve, reject) => {
    child.once('exit', (code) => { reject(new Error(`cluster node exited with ${String(code)} before it was ready`)) })
    child.on('message', (m: { ready?: boolean, port: number, instance: string, seq?: number, event?: string, result?: unknown, error?: { message: string, code?: string } }) => {
      if (m.ready === true) { resolve(m); return }
      if (m.seq !== undefined) { answers.get(m.seq)?.({ result: m.result, error: m.error }); answers.delete(m.seq); return }
      if (m.event !== undefined) {
        const event = m as NodeEvent
        events.push(event)
        for (let i = waiters.length - 1; i >= 0; i--) if (waiters[i].match(event)) waiters.splice(i, 1)[0].resolve(event)
      }
    })
  })
  const { port, instance } = await within(ready, 20_000, () => 'the cluster node to start')
  const exited = new Promise<void>((resolve) => { if (child.exitCode !== null || child.signalCode !== null) resolve(); else child.once('exit', () => { resolve() }) })
  return {
    port,
    url: `ws://127.0.0.1:${port}`,
    instance,
    pid: child.pid ?? 0,
    events,
    next: async (match, ms, what) => {
      const seen = events.find(match)
      if (seen !== undefined) return seen
      return await within(new Promise<NodeEvent>((resolve) => { waiters.push({ match, resolve }) }), ms, () => what)
    },
    call: async <T>(name: string, ...args: unknown[]): Promise<T> => {
      const id = ++seq
      const answer = new Promise<T>((resolve, reject) => {
        answers.set(id, (m) => { if (m.error !== undefined) reject(Object.assign(new Error(m.error.message), { code: m.error.code })); else resolve(m.result as T) })
      })
      child.send({ call: name, args, seq: id })
      return await within(answer, 10_000, () => `${name} on node ${instance}`)
    },
    signal: (signal) => { child.kill(signal) },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null && child.connected) {
        const killer = setTimeout(() => { child.kill('SIGKILL') }, 15_000)
        const id = ++seq
        const closed = new Promise<void>((resolve) => { answers.set(id, () => { resolve() }) })
        child.send({ call: 'close', args: [], seq: id })
        await Promise.race([closed, exited])
        if (child.connected) child.disconnect()
        await exited
        clearTimeout(killer)
      } else {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
        await exited
      }
    }
  }
}

/** Resolves once `app` sees `count` live nodes (itself included). */
export async function clusterOf (nodes: () => unknown[], count: number, ms = 10_000): Promise<void> {
  await until(() => nodes().length === count, ms, () => `${nodes().length} of ${count} nodes seen`)
}
