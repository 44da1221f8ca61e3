import type { ClosedBy, ProtocolStatName, StatsSnapshot, TotalStatName } from '../types'

/** Per-sub-protocol counters, named as Kamailio's `ws_<p>_*` statistics. */
class ProtocolCounters implements Record<ProtocolStatName, number> {
  current_connections = 0
  max_concurrent_connections = 0
  failed_connections = 0
  local_closed_connections = 0
  remote_closed_connections = 0
  received_frames = 0
  transmitted_frames = 0
  successful_handshakes = 0
}

/** Kamailio's `websocket:` statistics group; the totals carry `failed_handshakes` too. */
class TotalCounters extends ProtocolCounters implements Record<TotalStatName, number> {
  failed_handshakes = 0
  /** Beyond Kamailio: connections dropped by `handshakeTimeout` before their request head was complete. */
  handshake_timeouts = 0
}

/**
 * Counters bumped on the hot path are plain fields of one object per sub-protocol, looked up once per
 * connection (the connection keeps its own counters object), never by name per frame. The only writer of
 * the counters.
 */
export class Stats {
  private readonly total = new TotalCounters()
  private readonly protocols = new Map<string, ProtocolCounters>()

  constructor (protocols: readonly string[]) {
    // sip and msrp are always reported, as in Kamailio, even when not enabled.
    for (const name of ['sip', 'msrp', ...protocols]) this.forProtocol(name)
  }

  forProtocol (name: string): ProtocolCounters {
    let counters = this.protocols.get(name)
    if (counters === undefined) {
      counters = new ProtocolCounters()
      this.protocols.set(name, counters)
    }
    return counters
  }

  opened (p: ProtocolCounters): void {
    this.total.successful_handshakes++
    p.successful_handshakes++
    if (++this.total.current_connections > this.total.max_concurrent_connections) {
      this.total.max_concurrent_connections = this.total.current_connections
    }
    if (++p.current_connections > p.max_concurrent_connections) {
      p.max_concurrent_connections = p.current_connections
    }
  }

  closed (p: ProtocolCounters, by: ClosedBy): void {
    this.total.current_connections--
    p.current_connections--
    const field = by === 'remote' ? 'remote_closed_connections' : by === 'error' ? 'failed_connections' : 'local_closed_connections'
    this.total[field]++
    p[field]++
  }

  /** A handshake refused (by a check, a hook, a limit, or because the node is leaving). */
  handshakeFailed (): void {
    this.total.failed_handshakes++
  }

  /** A connection dropped by `handshakeTimeout` before its request head was complete. */
  handshakeTimedOut (): void {
    this.total.handshake_timeouts++
  }

  received (p: ProtocolCounters): void {
    this.total.received_frames++
    p.received_frames++
  }

  transmitted (p: ProtocolCounters): void {
    this.total.transmitted_frames++
    p.transmitted_frames++
  }

  /** Every counter under its Kamailio name (`ws_current_connections`, `ws_sip_received_frames`, ...). */
  snapshot (): StatsSnapshot {
    const out: Record<string, number> = {}
    for (const [key, value] of Object.entries(this.total)) out[`ws_${key}`] = value
    for (const [name, counters] of this.protocols) {
      for (const [key, value] of Object.entries(counters)) out[`ws_${name}_${key}`] = value
    }
    return out as StatsSnapshot
  }
}

export type { ProtocolCounters }
