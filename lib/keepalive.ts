import type { FastifyBaseLogger } from 'fastify'
import type { Connection, Registry } from './registry'

export interface KeepaliveActions {
  /** Sends the keepalive frame (Ping or Pong) and marks the connection used. */
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
 * The registry keeps connections in last-used order, so the idle ones are all at its head: a sweep walks
 * from there and stops at the first connection used within the timeout. Its cost is the number of due
 * connections, not the number of connections. Probing a connection marks it used, which moves it to the
 * tail, so the walk never meets the same connection twice.
 */
export class Keepalive {
  private timer: NodeJS.Timeout | null = null

  constructor (
    private readonly registry: Registry,
    private readonly settings: KeepaliveSettings,
    private readonly actions: KeepaliveActions,
    private readonly log: FastifyBaseLogger
  ) {}

  start (): void {
    if (this.settings.mechanism === 0 || this.timer !== null) return
    this.timer = setInterval(() => { this.sweep(Date.now()) }, this.settings.intervalMs)
    // The sweep must never keep the process alive on its own.
    this.timer.unref()
  }

  stop (): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
  }

  sweep (now: number): SweepResult {
    const { timeoutMs, closeDead, mechanism } = this.settings
    const result: SweepResult = { visited: 0, probed: 0, expired: 0 }
    if (mechanism === 0) return result
    const dueBefore = now - timeoutMs
    let conn = this.registry.head
    while (conn !== null && conn.lastUsed <= dueBefore) {
      const next = conn.next
      result.visited++
      if (conn.state === 'OPEN') {
        // A Ping is answered by a Pong, so silence after one is evidence of a dead peer; an unsolicited
        // Pong asks for nothing, so with mechanism 2 silence proves nothing.
        if (closeDead && mechanism === 1 && conn.pingSentAt !== 0 && now - conn.pingSentAt >= timeoutMs) {
          result.expired++
          this.actions.expire(conn)
        } else {
          result.probed++
          this.actions.probe(conn, now)
        }
      }
      conn = next
    }
    if (this.settings.verbose) {
      this.log.debug({ ...result, connections: this.registry.size }, 'fastify-sip-ws: keepalive sweep')
    }
    return result
  }
}
