import { createHmac, timingSafeEqual } from 'node:crypto'

/** Up to 2^56: a cluster-mode id (lib/cluster/ids.ts) reaches 2^53. */
const ID_BYTES = 7
const MAC_BYTES = 11
/** base64url of 7 + 11 bytes, no padding. */
const TOKEN = /^[A-Za-z0-9_-]{24}$/
const HIGH = 2 ** 48

/**
 * RFC 5626 §5.2 flow tokens: the user part of the edge's Path and Record-Route URIs, naming the WebSocket
 * connection a client registered or called over. The core hands it back in a Route; the edge reads the
 * connection id out of it with no table, and the HMAC makes a token the edge did not make worthless.
 *
 * Connection ids are never reused, so a token for a closed connection stays a token for a closed
 * connection (430, not another client's call). Alone, the key is made at start-up: after a restart, the
 * tokens in the core's bindings fail the check, and those bindings are dead anyway. In a cluster every
 * node has the same key (cluster/secret.ts) and ids are cluster-wide, so any node can read any token.
 */
export class FlowTokens {
  constructor (private readonly key: Buffer) {}

  make (connectionId: number): string {
    const id = Buffer.alloc(ID_BYTES)
    id[0] = Math.floor(connectionId / HIGH)
    id.writeUIntBE(connectionId % HIGH, 1, ID_BYTES - 1)
    return Buffer.concat([id, this.mac(id)]).toString('base64url')
  }

  /** The connection id, or null for a token this edge did not make. */
  read (token: string): number | null {
    if (!TOKEN.test(token)) return null
    const bytes = Buffer.from(token, 'base64url')
    const id = bytes.subarray(0, ID_BYTES)
    if (!timingSafeEqual(bytes.subarray(ID_BYTES), this.mac(id))) return null
    const value = id[0] * HIGH + id.readUIntBE(1, ID_BYTES - 1)
    return Number.isSafeInteger(value) ? value : null
  }

  private mac (id: Buffer): Buffer {
    return createHmac('sha256', this.key).update('flow\n').update(id).digest().subarray(0, MAC_BYTES)
  }
}
