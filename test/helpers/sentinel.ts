import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import IORedis from 'ioredis'
import { until } from './pool'
import { startRedis, startRedisProcess, type RedisServer } from './redis'
import { installCommand } from './system-packages'

const NAME = 'sipws-master'
/** How long a master may be silent before the sentinels count it down: short, so a test's failover is quick. */
export const DOWN_AFTER = 1000

/** A real Redis Sentinel deployment on 127.0.0.1: one master, one replica, three sentinels. */
export interface SentinelSet {
  master: RedisServer
  replica: RedisServer
  sentinels: RedisServer[]
  /** What `cluster.redis` takes for it (ioredis Sentinel options). */
  options: { sentinels: Array<{ host: string, port: number }>, name: string }
  /** The port the sentinels give as the master's now, as the first sentinel says. */
  masterPort: () => Promise<number>
  /** Stops every process by pid and removes the sentinels' config files. */
  stop: () => Promise<void>
}

async function ask (port: number, ...args: string[]): Promise<unknown> {
  const client = new IORedis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null })
  client.on('error', () => {})
  try {
    await client.connect()
    return await client.call(args[0], ...args.slice(1))
  } finally {
    client.disconnect()
  }
}

/** A flat [key, value, ...] answer (SENTINEL MASTER) as an object. */
function fields (answer: unknown): Record<string, string> {
  const list = answer as string[]
  const out: Record<string, string> = {}
  for (let i = 0; i + 1 < list.length; i += 2) out[list[i]] = list[i + 1]
  return out
}

/**
 * Starts the master, its replica and three sentinels (quorum 2, down after DOWN_AFTER ms), each on a free
 * port, and resolves once the replica is in sync and every sentinel knows the replica and the two other
 * sentinels: a failover can happen from then on.
 */
export async function startSentinels (): Promise<SentinelSet> {
  const dir = mkdtempSync(join(tmpdir(), 'sipws-sentinel-'))
  const started: RedisServer[] = []
  const stop = async (): Promise<void> => {
    for (const server of started.splice(0).reverse()) await server.kill()
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    // In the set's own directory: a replica writes the master's snapshot to disk as it syncs.
    const master = await startRedis(['--dir', dir])
    started.push(master)
    const replica = await startRedis(['--dir', dir, '--replicaof', '127.0.0.1', String(master.port)])
    started.push(replica)
    const sentinels: RedisServer[] = []
    for (let i = 0; i < 3; i++) {
      const sentinel = await startRedisProcess('redis-sentinel', `redis-sentinel is needed for the Sentinel tests: ${installCommand(['redis-sentinel'])}`, (port) => {
        // Sentinel rewrites its config file as it learns: each gets one of its own.
        const file = join(dir, `sentinel-${i}.conf`)
        writeFileSync(file, [
          `port ${port}`, 'bind 127.0.0.1', 'protected-mode no', 'daemonize no', 'logfile ""', 'loglevel warning', `dir ${dir}`,
          `sentinel monitor ${NAME} 127.0.0.1 ${master.port} 2`,
          `sentinel down-after-milliseconds ${NAME} ${DOWN_AFTER}`,
          `sentinel failover-timeout ${NAME} 5000`,
          `sentinel parallel-syncs ${NAME} 1`
        ].join('\n') + '\n')
        return [file]
      })
      sentinels.push(sentinel)
      started.push(sentinel)
    }
    await until(async () => /master_link_status:up/.test(String(await ask(replica.port, 'INFO', 'replication'))), 20_000, () => 'the replica to sync', 100)
    for (const sentinel of sentinels) {
      await until(async () => {
        const master = fields(await ask(sentinel.port, 'SENTINEL', 'MASTER', NAME))
        return Number(master['num-slaves']) >= 1 && Number(master['num-other-sentinels']) >= 2
      }, 30_000, () => `sentinel ${sentinel.port} to know the replica and the other sentinels`, 100)
    }
    return {
      master,
      replica,
      sentinels,
      options: { sentinels: sentinels.map((s) => ({ host: '127.0.0.1', port: s.port })), name: NAME },
      masterPort: async () => Number((await ask(sentinels[0].port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', NAME) as string[])[1]),
      stop
    }
  } catch (err) {
    await stop()
    throw err
  }
}

/** Whether the Redis on `port` answers and says it is a master. */
export async function isMaster (port: number): Promise<boolean> {
  try {
    return (await ask(port, 'ROLE') as unknown[])[0] === 'master'
  } catch {
    return false
  }
}
