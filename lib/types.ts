import type { FastifyBaseLogger, FastifyRequest } from 'fastify'

// The types every part shares, apart from the code that fills them: this file imports nothing of the
// package, so any file may import it without making a cycle.

export type ConnectionState = 'OPEN' | 'CLOSING' | 'CLOSED'
export type ClosedBy = 'local' | 'remote' | 'keepalive' | 'error'
export type DumpOrder = 'id_hash' | 'used_desc' | 'used_asc'

/**
 * What `wsSend` and the lwsc client send: a string as a text message, bytes (a Buffer or any Uint8Array)
 * as a binary one.
 */
export type WsData = string | Buffer | Uint8Array

export interface ConnectionAddress {
  /** The client: behind a proxy Fastify trusts (`trustProxy`), the one X-Forwarded-For names. */
  remoteAddress: string
  /** 0 when the client's address came from X-Forwarded-For, which carries no port. */
  remotePort: number
  /** The TCP peer of the socket (the proxy, behind one); the client's own address and port otherwise. */
  socketAddress?: string
  socketPort?: number
  localAddress: string
  localPort: number
  /** `wss` when the connection came over TLS, or a proxy Fastify trusts says so (X-Forwarded-Proto). */
  transport: 'ws' | 'wss'
}

/** What `wsDump()` gives for one connection. */
export interface ConnectionInfo extends Required<ConnectionAddress> {
  id: number
  state: ConnectionState
  subProtocol: string
  createdAt: number
  lastUsed: number
  /** Whole seconds since the last frame, as Kamailio prints it. */
  lastUsedAgo: number
}

export interface DumpResult {
  connections: ConnectionInfo[]
  /** Connections open now (Kamailio's `wscounter`). */
  wscounter: number
  /** True when more connections are open than were listed. */
  truncated: boolean
}

/** What every connection event carries besides its fields. */
interface WithLog {
  /**
   * A child of the app's logger bound to the upgrade's request id (`reqId`) and the connection's id
   * (`connId`). Left out of the event's keys, so logging or spreading the event shows its fields only.
   */
  readonly log: FastifyBaseLogger
}

interface WsMessageFields extends WithLog {
  id: number
  subProtocol: string
  remoteAddress: string
  remotePort: number
}

/** A complete text message (fragments already joined). */
export interface WsTextMessage extends WsMessageFields {
  binary: false
  data: string
}

/** A complete binary message (fragments already joined). */
export interface WsBinaryMessage extends WsMessageFields {
  binary: true
  data: Buffer
}

/** A complete message: testing `binary` narrows `data` to a string or a Buffer. */
export type WsMessage = WsTextMessage | WsBinaryMessage

export interface WsOpenEvent extends WithLog {
  id: number
  subProtocol: string
  remoteAddress: string
  remotePort: number
  /** The socket's own peer: the proxy when the client came through one Fastify trusts. */
  socketAddress: string
  socketPort: number
  localAddress: string
  localPort: number
  /** The upgrade request, as the `xhttp:request` hooks saw it (decorations included). */
  request: FastifyRequest
}

export interface WsClosedEvent extends WithLog {
  id: number
  remoteAddress: string
  remotePort: number
  socketAddress: string
  socketPort: number
  subProtocol: string
  /** The close code sent by whoever closed (1006 when the TCP connection went without a Close frame). */
  code: number
  reason: string
  by: ClosedBy
}

/** Kamailio's per-sub-protocol statistics (`ws_<p>_*`). */
export type ProtocolStatName =
  'current_connections' | 'max_concurrent_connections' | 'failed_connections' | 'local_closed_connections' |
  'remote_closed_connections' | 'received_frames' | 'transmitted_frames' | 'successful_handshakes'

/**
 * The totals carry `failed_handshakes` too, as Kamailio's do, and beyond Kamailio `handshake_timeouts`:
 * connections dropped by `handshakeTimeout` before their request head was complete.
 */
export type TotalStatName = ProtocolStatName | 'failed_handshakes' | 'handshake_timeouts'

/**
 * Every statistic under its Kamailio name: the totals (`ws_current_connections`), those of `sip` and `msrp`
 * (always reported, as in Kamailio), and those of each other sub-protocol enabled (`ws_kmsg_received_frames`).
 */
export type StatsSnapshot =
  { [K in TotalStatName as `ws_${K}`]: number } &
  { [K in ProtocolStatName as `ws_sip_${K}` | `ws_msrp_${K}`]: number } &
  { [name: `ws_${string}_${ProtocolStatName}`]: number }
