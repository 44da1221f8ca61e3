import cluster, { type Worker } from 'node:cluster'
import type { FastifyBaseLogger } from 'fastify'

/** The environment variable that tells a worker its place (0 to N-1); a replacement takes the same. */
export const WORKER_INDEX = 'WORKER_INDEX'

/** WORKERS from the environment: 1 when unset. More than one needs REDIS_URL: each worker is a cluster node. */
export function workerCount (text: string | undefined, redisUrl: string | undefined): number {
  if (text === undefined || text === '') return 1
  const count = Number(text)
  if (!Number.isInteger(count) || count < 1 || count > 256) throw new Error(`WORKERS must be a whole number from 1 to 256, got ${JSON.stringify(text)}`)
  if (count > 1 && redisUrl === undefined) {
    throw new Error(`WORKERS=${count} runs ${count} processes, each a node of one cluster, which needs Redis: set REDIS_URL too (e.g. REDIS_URL=redis://127.0.0.1:6379)`)
  }
  return count
}

/**
 * The primary of WORKERS=N: it forks N copies of this script, which all listen on PORT (node:cluster
 * shares the listening socket and hands each new connection to the next worker in turn) and each join
 * the cluster through REDIS_URL, so one command uses every core.
 *
 * A worker that dies is replaced (with its index); one that dies before it listened stops them all, as a
 * bad setting would only make it die again. SIGTERM is passed on, so every worker drains and exits, then
 * the primary exits: 0 when they all did. A second signal, or SIGINT, is passed on as SIGINT: close now.
 */
export function runPrimary (count: number, log: FastifyBaseLogger): void {
  let stopping = false
  let failed = false
  const listening = new Set<Worker>()
  const index = new Map<Worker, number>()

  const fork = (i: number): void => {
    const worker = cluster.fork({ [WORKER_INDEX]: String(i) })
    index.set(worker, i)
    worker.once('listening', () => { listening.add(worker) })
  }

  const stop = (signal: NodeJS.Signals): void => {
    const now = stopping || signal !== 'SIGTERM'
    stopping = true
    log.info({ signal, workers: Object.keys(cluster.workers ?? {}).length }, now ? 'stopping the workers now' : 'draining the workers, then stopping')
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill(now ? 'SIGINT' : 'SIGTERM')
  }

  cluster.on('exit', (worker, code, signal) => {
    const i = index.get(worker) ?? -1
    index.delete(worker)
    if (code !== 0) failed = true
    if (!stopping) {
      if (listening.has(worker)) {
        log.warn({ worker: i, pid: worker.process.pid, code, signal }, 'worker died; starting another')
        fork(i)
      } else {
        log.error({ worker: i, pid: worker.process.pid, code, signal }, 'worker died before it listened; stopping')
        stop('SIGINT')
      }
    }
    listening.delete(worker)
    if (stopping && index.size === 0) {
      log.info({ failed }, 'all workers stopped')
      process.exit(failed ? 1 : 0)
    }
  })

  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  for (let i = 0; i < count; i++) fork(i)
  log.info({ workers: count, pid: process.pid }, 'primary: workers started')
}
