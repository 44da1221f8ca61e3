import type { FastifyBaseLogger } from 'fastify'
import type { Connection, ConnectionLog } from './connection'

/**
 * A message as the `websocket:message` hooks get it. A class rather than a literal so its `log` (the
 * connection's logger, not the connection: a message kept keeps no socket alive) sits on the prototype,
 * out of the message's keys, at the cost of one field: an
 * own property made non-enumerable per message costs about as much as the rest of the message path.
 * One shape for text and binary (the `WsMessage` union is for the hooks' types), so the site that makes
 * it stays monomorphic.
 */
export class MessageEvent {
  readonly id: number
  readonly data: string | Buffer
  readonly binary: boolean
  readonly subProtocol: string
  readonly remoteAddress: string
  readonly remotePort: number
  readonly #logs: ConnectionLog

  constructor (conn: Connection, data: Buffer, binary: boolean) {
    this.id = conn.id
    this.data = binary ? data : data.toString()
    this.binary = binary
    this.subProtocol = conn.subProtocol
    this.remoteAddress = conn.remoteAddress
    this.remotePort = conn.remotePort
    this.#logs = conn.logs
  }

  get log (): FastifyBaseLogger {
    return this.#logs.log
  }
}
