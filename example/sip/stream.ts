import { headerKey } from './message'
import { contentLength, headerFields } from './parse'

/** Largest SIP message read from a stream; a peer that sends more is cut off rather than buffered for ever. */
export const MAX_STREAM_MESSAGE = 65536

export type StreamItem = { kind: 'message', data: Buffer } | { kind: 'ping' } | { kind: 'error', problem: string }

/**
 * Cuts a TCP byte stream into SIP messages (RFC 3261 §18.3: Content-Length is mandatory on a stream and
 * says where the body ends). A double CRLF between messages is an RFC 5626 §4.4.1 keepalive ping; a lone
 * CRLF (the pong) is skipped. After an error the stream cannot be trusted and the caller closes it.
 */
export class SipStreamReader {
  private buffer: Buffer = Buffer.alloc(0)

  push (chunk: Buffer): StreamItem[] {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
    const items: StreamItem[] = []
    for (;;) {
      let start = 0
      // A CRLF alone at the end may be half of a ping: it waits for the next chunk.
      while (this.buffer[start] === 0x0d && this.buffer[start + 1] === 0x0a && this.buffer.length > start + 2) {
        if (this.buffer[start + 2] === 0x0d && this.buffer[start + 3] === 0x0a) {
          items.push({ kind: 'ping' })
          start += 4
        } else {
          start += 2
        }
      }
      if (start > 0) this.buffer = this.buffer.subarray(start)
      const end = this.buffer.indexOf('\r\n\r\n')
      if (end === -1) {
        if (this.buffer.length > MAX_STREAM_MESSAGE) items.push({ kind: 'error', problem: 'headers too long' })
        return items
      }
      const length = streamLength(this.buffer.subarray(0, end))
      if (typeof length === 'string') {
        items.push({ kind: 'error', problem: length })
        return items
      }
      const total = end + 4 + length
      if (total > MAX_STREAM_MESSAGE) {
        items.push({ kind: 'error', problem: 'message too long' })
        return items
      }
      if (this.buffer.length < total) return items
      items.push({ kind: 'message', data: Buffer.from(this.buffer.subarray(0, total)) })
      this.buffer = this.buffer.subarray(total)
    }
  }
}

/**
 * The Content-Length of a message head, read as the parser reads it (a folded value, the compact `l`), or
 * why it cannot frame the message: none, several, or not a number.
 */
function streamLength (head: Buffer): number | string {
  const values: string[] = []
  for (const field of headerFields(head.toString('latin1').split(/\r?\n/).slice(1))) {
    if (typeof field === 'string') return field
    if (headerKey(field.name) === 'content-length') values.push(field.value)
  }
  if (values.length === 0) return 'no Content-Length on a stream'
  return contentLength(values)
}
