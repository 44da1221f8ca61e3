import type { ClosedBy } from './registry'

/** Per-sub-protocol counters, named as Kamailio's `ws_<p>_*` statistics. */
class ProtocolCounters {
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
class TotalCounters extends ProtocolCounters {
  failed_handshakes = 0
  /** Beyond Kamailio: connections dropped by `handshakeTimeout` before their request head was complete. */
  handshake_timeouts = 0
}

type ProtocolStat = keyof ProtocolCounters

/**
 * Every statistic under its Kamailio name: the totals (`ws_current_connections`), those of `sip` and `msrp`
 * (always reported, as in Kamailio), and those of each other sub-protocol enabled (`ws_kmsg_received_frames`).
 */
export type StatsSnapshot =
  { [K in keyof TotalCounters as `ws_${K}`]: number } &
  { [K in ProtocolStat as `ws_sip_${K}` | `ws_msrp_${K}`]: number } &
  { [name: `ws_${string}_${ProtocolStat}`]: number }

/**
 * Counters bumped on the hot path are plain fields of one object per sub-protocol, looked up once per
 * connection (the connection keeps its own counters object), never by name per frame.
 */
export class Stats {
  readonly total = new TotalCounters()
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
