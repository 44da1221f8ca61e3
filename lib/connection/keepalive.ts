import type { FastifyBaseLogger } from 'fastify'
import { OrderedList } from '../ordered-list'
import type { Connection } from './connection'

export interface KeepaliveActions {
  /** Sends the keepalive frame (Ping or Pong). */
  probe: (conn: Connection, now: number) => void
  /** Closes a peer that answered nothing since the last probe. */
  expire: (conn: Connection) => void
}

export interface KeepaliveSettings {
  /** 0 none, 1 Ping, 2 unsolicited Pong (Kamailio's keepalive_mechanism). */
  mechanism: 0 | 1 | 2
  timeoutMs: number
  intervalMs: number
  /** Close peers that do not answer a Ping within another timeout. Only meaningful with Pings. */
  closeDead: boolean
  verbose: boolean
}

export interface SweepResult {
  visited: number
  probed: number
  expired: number
}

/**
 * Finds dead peers by what they send, never by what we send: an app that keeps writing to a vanished peer
 * (a registrar's NOTIFYs, say) must not keep it alive. Each connection sits in a queue ordered by when
 * keepalive must next look at it (`keepaliveDue`), and every entry goes in at the tail with the same delay,
 * so the queue stays sorted without ever sorting: a sweep takes due entries from the head and stops at the
 * first that is not due. Its cost is the number of due connections, not the number of connections.
 *
 * A busy connection is heard many times a second, and moving it to the tail each time was a list move
 * per message. It moves only once its due time has gone `step` (a sweep interval) past where it sits;
 * `heardAt` keeps the exact time, and a sweep that reaches an entry heard since leaves it where it is for
 * a later sweep. A probe therefore still goes out at the first sweep after a full timeout of silence.
 */
export class Keepalive {
  private readonly queue = new OrderedList<Connection>()
  private timer: NodeJS.Timeout | null = null
  private readonly enabled: boolean
  /** How far an entry's due time may run ahead of its place in the queue before it moves. */
  private readonly step: number

  constructor (
    private readonly settings: KeepaliveSettings,
    private readonly actions: KeepaliveActions,
    private readonly log: FastifyBaseLogger
  ) {
    this.enabled = settings.mechanism !== 0
    this.step = Math.min(settings.intervalMs, settings.timeoutMs)
  }

  start (): void {
    if (!this.enabled || this.timer !== null) return
    this.timer = setInterval(() => { this.sweep(Date.now()) }, this.settings.intervalMs)
    // The sweep must never keep the process alive on its own.
    this.timer.unref()
  }

  stop (): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
  }

  /** The peer sent a frame (or the connection is new): nothing to do for another timeout. */
  heard (conn: Connection, now: number): void {
    if (!this.enabled) return
    conn.pingSentAt = 0
    conn.heardAt = now
    const due = now + this.settings.timeoutMs
    if (due - conn.keepaliveDue < this.step && conn.keepaliveLink.linked) return
    conn.keepaliveDue = due
    this.queue.moveToTail(conn.keepaliveLink)
  }

  forget (conn: Connection): void {
    this.queue.unlink(conn.keepaliveLink)
  }

  sweep (now: number): SweepResult {
    const { timeoutMs, closeDead, mechanism } = this.settings
    const result: SweepResult = { visited: 0, probed: 0, expired: 0 }
    let link = this.queue.head
    while (link !== null && link.owner.keepaliveDue <= now) {
      const conn = link.owner
      const next = link.next
      if (conn.state === 'OPEN' && conn.heardAt + timeoutMs > now) {
        // Heard since it took its place: due later, within a step; a later sweep finds it here.
        link = next
        continue
      }
      result.visited++
      if (!conn.isOpen) {
        // A closing connection is bounded by closeTimeout instead.
        this.queue.unlink(link)
      } else if (closeDead && mechanism === 1 && conn.pingSentAt !== 0) {
        // Silent for a whole timeout after a Ping, which asks for a Pong: evidence of a dead peer. An
        // unsolicited Pong asks for nothing, so with mechanism 2 silence proves nothing.
        result.expired++
        this.queue.unlink(link)
        this.actions.expire(conn)
      } else {
        result.probed++
        if (conn.pingSentAt === 0) conn.pingSentAt = now
        conn.keepaliveDue = now + timeoutMs
        this.queue.moveToTail(link)
        this.actions.probe(conn, now)
      }
      link = next
    }
    if (this.settings.verbose) {
      this.log.debug({ ...result }, 'fastify-sip-ws: keepalive sweep')
    }
    return result
  }
}
