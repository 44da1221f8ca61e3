import { LwscClosedError, LwscConnectionError, LwscQueueFullError } from '../errors'
import { Link } from '../ordered-list'
import { backoffDelay } from './backoff'
import { Connection, type ConnectionOwner } from './connection'
import type { LwscContext } from './context'
import { type Job, JobQueue } from './job'

/**
 * The pool for one (url, sub-protocol), Kamailio's endpoint cache entry: up to `poolSize` connections, a
 * FIFO of at most `queueSize` jobs beyond them, and the reconnect backoff while the target fails.
 *
 * Invariant: a job waits in the queue only while no connection is idle.
 */
export class Endpoint implements ConnectionOwner {
  private readonly all = new Set<Connection>()
  // Most recently used last: sequential traffic stays on one connection and the others stay cold.
  private readonly idle: Connection[] = []
  private readonly queue = new JobQueue()
  private connecting = 0
  private failures = 0
  private retryAt = 0
  private retryTimer: NodeJS.Timeout | null = null
  /** Place in the client's least-recently-used order. */
  readonly recentLink = new Link<Endpoint>(this)

  constructor (
    readonly url: string,
    readonly proto: string,
    private readonly ctx: LwscContext,
    private readonly release: (endpoint: Endpoint) => void
  ) {}

  get openCount (): number {
    return this.all.size - this.connecting
  }

  get connectingCount (): number {
    return this.connecting
  }

  get queued (): number {
    return this.queue.length
  }

  get inFlight (): number {
    let n = 0
    for (const conn of this.all) if (conn.busy) n++
    return n
  }

  submit (job: Job): void {
    const conn = this.takeIdle()
    if (conn !== null) {
      conn.dispatch(job)
      if (conn.usable) this.idle.push(conn)
      return
    }
    // Jobs that connections not yet open will take do not count against queueSize: it bounds the wait
    // beyond the pool.
    const { poolSize, queueSize } = this.ctx.options
    if (this.queue.length >= queueSize + poolSize - this.openCount) {
      if (this.ctx.options.verbosity >= 2) this.ctx.log.debug({ url: this.url, proto: this.proto, queued: this.queue.length }, 'lwsc: queue full')
      this.fail(job, new LwscQueueFullError(this.url, this.queue.length))
      return
    }
    this.queue.push(job)
    this.grow()
  }

  /** Settles a job that will not get a reply. Notifications never reject for a target's failure. */
  fail (job: Job, err: Error, quiet = false): void {
    if (job.expectsReply) {
      this.ctx.counters.errors++
      job.reject(err)
      return
    }
    this.ctx.counters.failedNotifies++
    if (!quiet) this.ctx.log.warn({ url: this.url, proto: this.proto, err }, 'lwsc: notification not delivered')
    job.resolve(undefined)
  }

  /** Called by a connection that has just become idle: it takes queued jobs first. */
  serve (conn: Connection): void {
    let job: Job | null
    while (conn.usable && (job = this.queue.shift()) !== null) conn.dispatch(job)
    if (conn.usable) {
      this.idle.push(conn)
      conn.park()
    }
  }

  opened (conn: Connection): void {
    this.connecting--
    this.failures = 0
    this.retryAt = 0
    if (this.ctx.options.verbosity >= 1) this.ctx.log.info({ url: this.url, proto: this.proto, open: this.openCount }, 'lwsc: connected')
    this.serve(conn)
    this.grow()
  }

  /** A connection left service: closed, failed to open, or discarded. Called once per connection. */
  detached (conn: Connection, err: Error, wasOpen: boolean): void {
    this.all.delete(conn)
    if (wasOpen) {
      const i = this.idle.lastIndexOf(conn)
      if (i !== -1) this.idle.splice(i, 1)
    } else {
      this.connecting--
    }
    if (this.ctx.closed) return
    if (!wasOpen) {
      this.attemptFailed(err)
    } else {
      if (this.ctx.options.verbosity >= 1) this.ctx.log.info({ url: this.url, proto: this.proto, reason: err.message }, 'lwsc: connection closed')
      if (this.queue.length > 0) this.grow()
    }
    if (this.all.size === 0 && this.queue.length === 0 && this.failures === 0) this.release(this)
  }

  keepalive (): void {
    for (const conn of this.all) conn.keepalive()
  }

  /** Nothing waits, connects or is in flight: closing the endpoint now fails no job. */
  get evictable (): boolean {
    if (this.queue.length > 0 || this.connecting > 0) return false
    for (const conn of this.all) if (!conn.quiet) return false
    return true
  }

  /** Eviction: stops retrying and closes every (quiet) connection with 1000, in the background. */
  retire (): void {
    if (this.retryTimer !== null) {
      clearTimeout(this.retryTimer)
      this.retryTimer = null
    }
    for (const conn of [...this.all]) conn.retire('endpoint evicted from the cache (maxEndpoints)')
  }

  /** True when the endpoint holds nothing and its backoff has run out, so forgetting it loses nothing. */
  stale (now: number): boolean {
    return this.all.size === 0 && this.queue.length === 0 && this.retryTimer === null && now >= this.retryAt
  }

  /** Rejects what waits, closes every connection, resolves when all sockets are closed. */
  async close (): Promise<void> {
    if (this.retryTimer !== null) {
      clearTimeout(this.retryTimer)
      this.retryTimer = null
    }
    this.flush(new LwscClosedError(this.url))
    await Promise.all(Array.from(this.all, (conn) => conn.close()))
  }

  // Opens connections for waiting jobs, within the pool; while the target fails, one probe at a time and
  // not before the backoff has passed.
  private grow (): void {
    const { poolSize, verbosity } = this.ctx.options
    while (!this.ctx.closed && this.queue.length > this.connecting && this.all.size < poolSize) {
      if (this.failures > 0) {
        if (this.connecting > 0) return
        const wait = this.retryAt - Date.now()
        if (wait > 0) {
          if (this.retryTimer === null) {
            if (verbosity >= 2) this.ctx.log.debug({ url: this.url, proto: this.proto, retryIn: wait }, 'lwsc: reconnect scheduled')
            // Not unref'd: queued jobs wait on it, and their promises must settle before the process exits.
            this.retryTimer = setTimeout(this.onRetry, wait)
          }
          return
        }
      }
      this.openConnection()
    }
  }

  private openConnection (): void {
    if (this.ctx.options.verbosity >= 2) this.ctx.log.debug({ url: this.url, proto: this.proto, reconnect: this.failures > 0 }, 'lwsc: connecting')
    let conn: Connection
    try {
      conn = new Connection(this, this.ctx)
    } catch (err) {
      // ws throws synchronously only for arguments checkTarget already vetted; count it as a failed attempt.
      this.attemptFailed(new LwscConnectionError(this.url, (err as Error).message, { cause: err }))
      return
    }
    this.all.add(conn)
    this.connecting++
  }

  private attemptFailed (err: Error): void {
    const { verbosity, reconnectBackoffMin, reconnectBackoffMax } = this.ctx.options
    this.failures++
    this.ctx.counters.connectFailures++
    const delay = backoffDelay(this.failures, reconnectBackoffMin, reconnectBackoffMax)
    this.retryAt = Date.now() + delay
    if (verbosity >= 1) this.ctx.log.info({ url: this.url, proto: this.proto, err, failures: this.failures, retryIn: delay }, 'lwsc: connection failed')
    // With nothing left that could serve them, waiting jobs share the failure rather than wait for a retry.
    if (this.all.size === 0) this.flush(err)
    else this.grow()
  }

  private readonly onRetry = (): void => {
    this.retryTimer = null
    this.grow()
  }

  private takeIdle (): Connection | null {
    while (this.idle.length > 0) {
      const conn = this.idle.pop() as Connection
      if (conn.usable) return conn
    }
    return null
  }

  private flush (err: Error): void {
    let failedNotifies = 0
    for (let job = this.queue.takeAll(); job !== null;) {
      const next = job.next
      job.next = null
      if (!job.expectsReply) failedNotifies++
      this.fail(job, err, true)
      job = next
    }
    if (failedNotifies > 0 && !this.ctx.closed) {
      this.ctx.log.warn({ url: this.url, proto: this.proto, err, count: failedNotifies }, 'lwsc: notifications not delivered')
    }
  }
}
