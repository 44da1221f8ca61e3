import type { ClosedBy, ProtocolStatName, StatsSnapshot, TotalStatName } from '../types'

const PROTOCOL_STATS: readonly ProtocolStatName[] = [
  'current_connections', 'max_concurrent_connections', 'failed_connections', 'local_closed_connections',
  'remote_closed_connections', 'received_frames', 'transmitted_frames', 'successful_handshakes'
]
const TOTAL_STATS: readonly TotalStatName[] = [...PROTOCOL_STATS, 'failed_handshakes', 'handshake_timeouts']

/**
 * Per-sub-protocol counters, named as Kamailio's `ws_<p>_*` statistics, and beyond Kamailio the data
 * messages and their bytes each way (Prometheus counters; not in `wsStats()`).
 */
class ProtocolCounters implements Record<ProtocolStatName, number> {
  current_connections = 0
  max_concurrent_connections = 0
  failed_connections = 0
  local_closed_connections = 0
  remote_closed_connections = 0
  received_frames = 0
  transmitted_frames = 0
  successful_handshakes = 0
  messages_received = 0
  messages_sent = 0
  bytes_received = 0
  /** Counted only while `countSentBytes` is on: a string's size in UTF-8 costs a pass over it. */
  bytes_sent = 0
}

/** Messages and bytes each way, of one sub-protocol. */
export interface Traffic {
  messagesReceived: number
  messagesSent: number
  bytesReceived: number
  bytesSent: number
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
  /** Whether `bytes_sent` is counted: on once a metrics registry reads it. */
  private countSentBytes = false

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

  // The frame totals are the sum of the sub-protocols' counts, added up when read (snapshot): one increment
  // per frame rather than two.
  received (p: ProtocolCounters): void {
    p.received_frames++
  }

  transmitted (p: ProtocolCounters): void {
    p.transmitted_frames++
  }

  /** A data message received, `size` bytes of payload. */
  messageReceived (p: ProtocolCounters, size: number): void {
    p.messages_received++
    p.bytes_received += size
  }

  /** A data message sent (`wsSend`). */
  messageSent (p: ProtocolCounters, data: string | Uint8Array): void {
    p.messages_sent++
    if (this.countSentBytes) p.bytes_sent += typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength
  }

  /** From now on the bytes sent are counted too. */
  countBytesSent (): void {
    this.countSentBytes = true
  }

  /** Messages and bytes each way, by sub-protocol. */
  traffic (): Map<string, Traffic> {
    const out = new Map<string, Traffic>()
    for (const [name, p] of this.protocols) {
      out.set(name, { messagesReceived: p.messages_received, messagesSent: p.messages_sent, bytesReceived: p.bytes_received, bytesSent: p.bytes_sent })
    }
    return out
  }

  /** Every counter under its Kamailio name (`ws_current_connections`, `ws_sip_received_frames`, ...). */
  snapshot (): StatsSnapshot {
    const out: Record<string, number> = {}
    for (const key of TOTAL_STATS) out[`ws_${key}`] = this.total[key]
    for (const [name, counters] of this.protocols) {
      for (const key of PROTOCOL_STATS) out[`ws_${name}_${key}`] = counters[key]
      out.ws_received_frames += counters.received_frames
      out.ws_transmitted_frames += counters.transmitted_frames
    }
    return out as StatsSnapshot
  }
}

export type { ProtocolCounters }
