import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import { ClusterUnavailableError } from '../errors'
import { atMost, connected, type RedisPair } from './redis'

/**
 * The node's two Redis connections (commands, and a subscriber) and whether both are up. Nothing local waits
 * on them: while Redis is away remote calls fail at once and local traffic goes on.
 */
export class RedisLink {
  readonly commands: Redis
  readonly subscriber: Redis
  /** Since when both connections have been up (0: one is down): only then is silence from a node news. */
  private since = 0
  /** When both came back after an outage (0: never): Redis may have come back empty. */
  private back = 0
  private stopped = false

  constructor (
    private readonly pair: RedisPair,
    private readonly instance: string,
    private readonly log: FastifyBaseLogger,
    /** Both connections are up again after an outage. */
    private readonly onBack: () => void
  ) {
    this.commands = pair.commands
    this.subscriber = pair.subscriber
    // ioredis prints 'error' events nobody listens to on the console; ours go to the logger.
    for (const client of [pair.commands, pair.subscriber]) client.on('error', this.onError)
  }

  get ready (): boolean {
    return this.commands.status === 'ready' && this.subscriber.status === 'ready'
  }

  get upSince (): number {
    return this.since
  }

  get backSince (): number {
    return this.back
  }

  /**
   * Connects both, then runs `join` (taking a lease, subscribing), all within `timeoutMs`; rejects with a
   * typed error, and lets the connections go, if Redis cannot be reached in time.
   */
  async connect (timeoutMs: number, join: () => Promise<void>): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { reject(new ClusterUnavailableError(`no Redis within connectTimeout (${timeoutMs} ms)`)) }, timeoutMs)
    })
    try {
      await Promise.race([(async () => {
        await Promise.all([connected(this.commands), connected(this.subscriber)]).catch((err: Error) => {
          throw new ClusterUnavailableError(`cannot reach Redis: ${err.message}`)
        })
        await join()
      })(), deadline])
    } catch (err) {
      this.stopped = true
      await this.pair.quit(timeoutMs)
      throw err
    } finally {
      clearTimeout(timer)
    }
    for (const client of [this.commands, this.subscriber]) {
      client.on('ready', this.onReady)
      client.on('close', this.onDown)
    }
    this.since = Date.now()
  }

  /**
   * Says goodbye (`farewell`, only while Redis is up), then lets both connections go; each step waits at
   * most `withinMs` for Redis, so a stalled one does not hold up the app's close.
   */
  async close (farewell: () => Promise<void>, withinMs: number): Promise<void> {
    this.stopped = true
    if (this.ready) await atMost(farewell(), withinMs)
    await this.pair.quit(withinMs)
  }

  private readonly onError = (err: Error): void => {
    this.log.debug({ err }, 'fastify-sip-ws: cluster: Redis connection error')
  }

  private readonly onReady = (): void => {
    if (!this.ready || this.stopped) return
    this.since = Date.now()
    this.back = this.since
    this.log.info({ instance: this.instance }, 'fastify-sip-ws: cluster: Redis is back')
    this.onBack()
  }

  private readonly onDown = (): void => {
    if (this.since !== 0 && !this.stopped) this.log.warn({ instance: this.instance }, 'fastify-sip-ws: cluster: Redis connection lost; remote calls fail until it is back, local traffic goes on')
    this.since = 0
  }
}
