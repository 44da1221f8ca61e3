import { createHmac, timingSafeEqual } from 'node:crypto'

const ID_BYTES = 6
const MAC_BYTES = 12
/** base64url of 6 + 12 bytes, no padding. */
const TOKEN = /^[A-Za-z0-9_-]{24}$/

/**
 * RFC 5626 §5.2 flow tokens: the user part of the edge's Path and Record-Route URIs, naming the WebSocket
 * connection a client registered or called over. The core hands it back in a Route; the edge reads the
 * connection id out of it with no table, and the HMAC makes a token the edge did not make worthless.
 *
 * Connection ids are never reused by a process, so a token for a closed connection stays a token for a
 * closed connection (430, not another client's call). The key is made at start-up: after a restart, the
 * tokens in the core's bindings fail the check, and those bindings are dead anyway.
 */
export class FlowTokens {
  constructor (private readonly key: Buffer) {}

  make (connectionId: number): string {
    const id = Buffer.alloc(ID_BYTES)
    id.writeUIntBE(connectionId, 0, ID_BYTES)
    return Buffer.concat([id, this.mac(id)]).toString('base64url')
  }

  /** The connection id, or null for a token this edge did not make. */
  read (token: string): number | null {
    if (!TOKEN.test(token)) return null
    const bytes = Buffer.from(token, 'base64url')
    const id = bytes.subarray(0, ID_BYTES)
    if (!timingSafeEqual(bytes.subarray(ID_BYTES), this.mac(id))) return null
    return id.readUIntBE(0, ID_BYTES)
  }

  private mac (id: Buffer): Buffer {
    return createHmac('sha256', this.key).update('flow\n').update(id).digest().subarray(0, MAC_BYTES)
  }
}
