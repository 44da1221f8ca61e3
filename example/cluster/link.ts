import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import IORedis, { type Redis } from 'ioredis'
import type { ConnectionLocal } from '../proxy/connection-local'
import type { Parking } from '../proxy/parking'
import type { Registrar } from '../proxy/registrar'
import { ClusterLocations } from './locations'
import { RedisBindings } from './redis-bindings'
import { ClusterSecret, type ClusterKeys } from './secret'

/** The Redis key and channel prefix of the example's cluster (the plugin's default). */
const CLUSTER_PREFIX = 'sipws'
/** The plugin's `cluster.nodeTimeout` (its default): a dead node is known within it. */
export const NODE_TIMEOUT = 3000
const CONNECT_TIMEOUT = 10000
/** As the plugin's `requestTimeout` default. */
const COMMAND_TIMEOUT = 1000
/**
 * The example's own Redis connection in cluster mode (REDIS_URL), beside the two the plugin opens: the
 * registrar's bindings and the cluster secret go over it. Like the plugin's, it fails fast while Redis
 * is away (no offline queue to replay stale writes later) and reconnects at least every half second.
 */
export class ClusterLink {
  private constructor (private readonly redis: Redis, private readonly secret: ClusterSecret, private readonly url: string) {}

  /** Connects and agrees on the cluster secret; rejects naming REDIS_URL when Redis cannot be reached. */
  static async open (url: string): Promise<ClusterLink> {
    const redis = new IORedis(url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // A Redis that hangs fails a REGISTER's write (logged) instead of holding its answer.
      commandTimeout: COMMAND_TIMEOUT,
      retryStrategy: (attempt: number) => Math.min(50 * attempt, 500)
    })
    let timer: NodeJS.Timeout | undefined
    // The socket's own error (ECONNREFUSED, ...) says more than the rejection ("Connection is closed").
    let cause: Error | undefined
    redis.on('error', (err: Error) => { cause ??= err })
    try {
      // connect() settles with the first attempt (refused: at once); the deadline bounds a silent one.
      await Promise.race([redis.connect(), new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => { reject(new Error(`not ready within ${CONNECT_TIMEOUT} ms`)) }, CONNECT_TIMEOUT)
      })])
      return new ClusterLink(redis, await ClusterSecret.agree(redis, CLUSTER_PREFIX), url)
    } catch (err) {
      redis.disconnect()
      throw new Error(`REDIS_URL: cannot use Redis at ${url}: ${(cause ?? err as Error).message}`)
    } finally {
      clearTimeout(timer)
    }
  }

  get keys (): ClusterKeys {
    return this.secret.keys
  }

  /** The plugin's `cluster` option. */
  get pluginOptions (): { redis: string, prefix: string, nodeTimeout: number } {
    return { redis: this.url, prefix: CLUSTER_PREFIX, nodeTimeout: NODE_TIMEOUT }
  }

  /**
   * The proxy's view of the cluster, once the plugin has joined it (`app.wsCluster`); `connections` are
   * the local sides written with this node's bindings; `parking` holds the requests for moving users.
   */
  locations (app: FastifyInstance, connections: ReadonlyMap<number, ConnectionLocal>, parking: Parking): ClusterLocations {
    const bindings = new RedisBindings(this.redis, CLUSTER_PREFIX, app.wsCluster.instance)
    return new ClusterLocations(bindings, app.wsCluster, connections, app.log, { registeredHere: (aor) => { parking.wake(aor) } })
  }

  /**
   * Keeps Redis in step: a node that went down has its bindings purged (`cluster:node-down`: each survivor
   * purges, unless Redis says the node's lease is alive after all, and a purge done twice removes nothing
   * more); after Redis comes back, which may be empty, or when the others may have counted this node gone
   * (`cluster:rejoined`), the secret and the bindings of this node's `registrar` are written again. Quits
   * at close.
   */
  watch (app: FastifyInstance, locations: ClusterLocations, registrar: Registrar): void {
    const log = app.log
    app.addWsHook('cluster:node-down', async (node) => {
      const removed = await locations.purge(node.instance).catch((err: unknown) => {
        log.warn({ err, node: node.instance }, 'sip cluster: bindings of a node that went down not purged (each is dropped when a send to it fails)')
        return 0
      })
      // -1: it came back before the purge ran (and writes its bindings again: cluster:rejoined).
      if (removed < 0) log.info({ node: node.instance }, 'sip cluster: node down, but Redis says it is alive again: its bindings stay')
      else log.info({ node: node.instance, removed }, 'sip cluster: node down, its bindings purged')
    })
    app.addWsHook('cluster:rejoined', async (event) => {
      log.warn({ ...event }, 'sip cluster: the others may have counted this node gone; writing its bindings again')
      await this.recover(locations, registrar, log, 'rejoined')
    })
    this.redis.on('error', (err: Error) => { log.debug({ err }, 'sip cluster: Redis connection error') })
    // Attached once ready: every later 'ready' is Redis coming back.
    this.redis.on('ready', () => {
      locations.redisBack()
      void this.recover(locations, registrar, log, 'Redis is back')
    })
    app.addHook('onClose', async () => {
      await locations.written()
      if (this.redis.status === 'ready') await this.redis.quit().catch(() => { this.redis.disconnect() })
      else this.redis.disconnect()
    })
  }

  /** Quits without having watched (the plugin refused to start, say). */
  close (): void {
    this.redis.disconnect()
  }

  private async recover (locations: ClusterLocations, registrar: Registrar, log: FastifyBaseLogger, why: string): Promise<void> {
    try {
      if (!await this.secret.reassert()) log.error('sip cluster: the secret in Redis is not this node\'s (a node started while Redis was empty); restart this node so that all agree')
      log.info({ bindings: locations.resync(registrar.all()) }, `sip cluster: ${why}, bindings written again`)
    } catch (err) {
      log.warn({ err, why }, 'sip cluster: the bindings could not be written again')
    }
  }
}
