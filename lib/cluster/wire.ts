/**
 * What nodes publish to each other on a lease's channel. A remote send is one small binary message, so
 * the path costs one buffer and one publish: no JSON, no base64 of the payload.
 *
 *   operation  u8 | id f64 | request u32 (0: no answer wanted) | reply-to prefix f64 | body
 *   answer     u8 (ANSWER) | request u32 | outcome u8 | body (JSON, for views)
 */
export const SEND_TEXT = 1
export const SEND_BINARY = 2
export const CLOSE = 3
export const PING = 4
export const PONG = 5
export const ANSWER = 6
export type Operation = typeof SEND_TEXT | typeof SEND_BINARY | typeof CLOSE | typeof PING | typeof PONG

const HEADER = 21
const ANSWER_HEADER = 6

export interface Decoded {
  op: Operation
  id: number
  request: number
  replyTo: number
  body: Buffer
}

export interface DecodedAnswer {
  request: number
  ok: boolean
  body: Buffer
}

/** One operation on connection `id`; `body` a string (sent as UTF-8) or bytes. */
export function encode (op: Operation, id: number, request: number, replyTo: number, body: string | Uint8Array | null): Buffer {
  const size = body === null ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength
  const buf = Buffer.allocUnsafe(HEADER + size)
  buf[0] = op
  buf.writeDoubleBE(id, 1)
  buf.writeUInt32BE(request, 9)
  buf.writeDoubleBE(replyTo, 13)
  if (typeof body === 'string') buf.write(body, HEADER)
  else if (body !== null) buf.set(body, HEADER)
  return buf
}

/** The Close body: the code, then the reason in UTF-8 (as in a Close frame). */
export function closeBody (code: number, reason: string): Buffer {
  const buf = Buffer.allocUnsafe(2 + Buffer.byteLength(reason))
  buf.writeUInt16BE(code, 0)
  buf.write(reason, 2)
  return buf
}

export function encodeAnswer (request: number, ok: boolean, body: string | null = null): Buffer {
  const size = body === null ? 0 : Buffer.byteLength(body)
  const buf = Buffer.allocUnsafe(ANSWER_HEADER + size)
  buf[0] = ANSWER
  buf.writeUInt32BE(request, 1)
  buf[5] = ok ? 1 : 0
  if (body !== null) buf.write(body, ANSWER_HEADER)
  return buf
}

/** Null for anything malformed: a message on our channel that we did not write is dropped, not trusted. */
export function decode (buf: Buffer): Decoded | DecodedAnswer | null {
  if (buf.length >= ANSWER_HEADER && buf[0] === ANSWER) {
    return { request: buf.readUInt32BE(1), ok: buf[5] === 1, body: buf.subarray(ANSWER_HEADER) }
  }
  if (buf.length < HEADER || buf[0] < SEND_TEXT || buf[0] > PONG) return null
  const id = buf.readDoubleBE(1)
  if (!Number.isSafeInteger(id)) return null
  return { op: buf[0] as Operation, id, request: buf.readUInt32BE(9), replyTo: buf.readDoubleBE(13), body: buf.subarray(HEADER) }
}
