/**
 * The load generators' WebSocket client, on raw sockets: a handshake, pre-built masked frames, and a frame
 * splitter that only finds boundaries. It does far less per message than any server under test, so the
 * load side is not what a figure measures (run.ts reports its CPU use beside each figure to show it).
 * Frames reuse one masking key per connection: servers cannot tell, and it saves the load side a
 * random draw and a copy per message.
 */
import net from 'node:net'
import { frame } from '../test/helpers/frames'
import { handshakeLines } from '../test/helpers/raw'

export const OP_TEXT = 1
export const OP_CLOSE = 8
export const OP_PING = 9

/** Calls `onFrame` for each complete server frame (unmasked, RFC 6455 §5.1) in a byte stream. */
export class FrameSplitter {
  private pending: Buffer | null = null

  constructor (private readonly onFrame: (opcode: number, payload: Buffer) => void) {}

  push (chunk: Buffer): void {
    let buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk])
    this.pending = null
    while (buf.length >= 2) {
      let length = buf[1] & 0x7f
      let offset = 2
      if (length === 126) {
        if (buf.length < 4) break
        length = buf.readUInt16BE(2)
        offset = 4
      } else if (length === 127) {
        if (buf.length < 10) break
        length = Number(buf.readBigUInt64BE(2))
        offset = 10
      }
      if (buf.length < offset + length) break
      this.onFrame(buf[0] & 0x0f, buf.subarray(offset, offset + length))
      buf = buf.subarray(offset + length)
    }
    if (buf.length > 0) this.pending = buf
  }
}

export function textFrame (text: string): Buffer {
  return frame(OP_TEXT, text)
}

export function pongFrame (payload: Buffer): Buffer {
  return frame(0x0a, payload)
}

export const CLOSE_FRAME = frame(OP_CLOSE, Buffer.from([0x03, 0xe8]))

export interface OpenSocket { socket: net.Socket, rest: Buffer }

/** A handshake answered with something else than 101: its status, and Retry-After in seconds when given. */
export class Refused extends Error {
  constructor (readonly status: number, readonly retryAfter: number | null, line: string) {
    super(`handshake refused: ${line}`)
  }
}

function refusal (head: Buffer, end: number): Refused {
  const text = head.subarray(0, end).toString('latin1')
  const line = text.slice(0, text.indexOf('\r\n') === -1 ? text.length : text.indexOf('\r\n'))
  const retry = /\r\nretry-after:\s*(\d+)/i.exec(text)
  return new Refused(Number(line.split(' ')[1]), retry === null ? null : Number(retry[1]), line)
}

/**
 * Opens a WebSocket with sub-protocol `sip` from `localAddress`. Resolves with the socket (paused at the
 * frame layer: the caller attaches its own 'data' listener) and any bytes that came after the 101.
 */
export async function openWs (port: number, localAddress: string, timeoutMs: number, path = '/'): Promise<OpenSocket> {
  return await new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress, noDelay: true })
    let head: Buffer = Buffer.alloc(0)
    const timer = setTimeout(() => { fail(new Error(`handshake timed out after ${timeoutMs} ms`)) }, timeoutMs)
    const fail = (err: Error): void => {
      clearTimeout(timer)
      socket.destroy()
      reject(err)
    }
    const onData = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk])
      const end = head.indexOf('\r\n\r\n')
      if (end === -1) {
        if (head.length > 16384) fail(new Error('no end of HTTP head'))
        return
      }
      const status = head.subarray(0, 12).toString('latin1')
      if (status !== 'HTTP/1.1 101') return fail(refusal(head, end))
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('error', fail)
      resolve({ socket, rest: head.subarray(end + 4) })
    }
    socket.on('data', onData)
    socket.once('error', fail)
    socket.once('close', () => { fail(new Error('closed during the handshake')) })
    socket.once('connect', () => {
      const lines = handshakeLines(port, {}, `GET ${path} HTTP/1.1`)
      socket.write(lines.join('\r\n') + '\r\n\r\n')
    })
  })
}
