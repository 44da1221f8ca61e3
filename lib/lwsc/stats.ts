/** What `LwscClient.stats()` returns. Gauges are the state now; counters run from construction. */
export interface LwscStats {
  /** Gauge: open connections, idle or busy. */
  connections: number
  /** Gauge: connections whose opening handshake is under way. */
  connecting: number
  /** Gauge: requests sent and waiting for their reply. */
  inFlight: number
  /** Gauge: requests and notifications waiting for a connection. */
  queued: number
  /** Gauge: cached (url, sub-protocol) endpoints. */
  endpoints: number
  /** Counter: connections that completed the opening handshake. */
  opened: number
  /** Counter: connection attempts that failed (refused, timed out, sub-protocol refused, TLS). */
  connectFailures: number
  /** Counter: `request`/`requestProto` calls accepted. */
  requests: number
  /** Counter: requests resolved with a reply. */
  replies: number
  /** Counter: requests rejected, for any reason (timeouts included). */
  errors: number
  /**
   * Counter: timeouts that fired: a connection attempt not open within `timeoutInit`, or a request with no
   * reply within `timeoutRead`. A connect timeout counts once however many jobs waited on that attempt
   * (the requests among them count in `errors`).
   */
  timeouts: number
  /** Counter: `notify`/`notifyProto` calls accepted. */
  notifies: number
  /** Counter: notifications given up (target down, queue full, write failed); they still resolved. */
  failedNotifies: number
  /** Counter: messages that arrived when no request was waiting (late replies, unsolicited data); dropped. */
  dropped: number
}

export type LwscCounters = Omit<LwscStats, 'connections' | 'connecting' | 'inFlight' | 'queued' | 'endpoints'>

export function newCounters (): LwscCounters {
  return { opened: 0, connectFailures: 0, requests: 0, replies: 0, errors: 0, timeouts: 0, notifies: 0, failedNotifies: 0, dropped: 0 }
}
