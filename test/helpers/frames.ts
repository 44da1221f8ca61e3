import { randomBytes } from 'node:crypto'
import type net from 'node:net'
import { acceptFor, handshakeLines, newKey, rawRequest, request } from './raw'

export interface FrameOptions {
  fin?: boolean
  rsv?: number
  mask?: boolean
  /** Claim a payload length other than the real one. */
  length?: number
  /** Force the 64-bit length form. */
  long64?: boolean
  /** The masking key; random when left out. */
  maskKey?: Buffer
}

/** Builds one client frame, masked unless told otherwise (RFC 6455 §5.2). */
export function frame (opcode: number, payload: Buffer | string = Buffer.alloc(0), options: FrameOptions = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload
  const { fin = true, rsv = 0, mask = true } = options
  const length = options.length ?? data.length
  let header: Buffer
  if (length < 126 && options.long64 !== true) {
    header = Buffer.from([0, length])
  } else if (length < 65536 && options.long64 !== true) {
    header = Buffer.alloc(4)
    header[1] = 126
    header.writeUInt16BE(length, 2)
  } else {
    header = Buffer.alloc(10)
    header[1] = 127
    header.writeBigUInt64BE(BigInt(length), 2)
  }
  header[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f)
  if (!mask) return Buffer.concat([header, data])
  header[1] |= 0x80
  const key = options.maskKey ?? randomBytes(4)
  const masked = Buffer.alloc(data.length)
  for (let i = 0; i < data.length; i++) masked[i] = data[i] ^ key[i & 3]
  return Buffer.concat([header, key, masked])
}

export function closePayload (code: number, reason = ''): Buffer {
  const buf = Buffer.alloc(2 + Buffer.byteLength(reason))
  buf.writeUInt16BE(code, 0)
  buf.write(reason, 2)
  return buf
}

export interface ServerFrame {
  fin: boolean
  opcode: number
  payload: Buffer
}

/** Reads server frames (unmasked) from a socket; `next()` waits for one, `ended` resolves on TCP close. */
export class FrameReader {
  private buf: Buffer
  private readonly frames: ServerFrame[] = []
  private waiting: Array<(f: ServerFrame | null) => void> = []
  private isClosed = false
  readonly ended: Promise<void>

  constructor (readonly socket: net.Socket, initial: Buffer = Buffer.alloc(0)) {
    this.buf = initial
    this.ended = new Promise((resolve) => {
      socket.on('close', () => {
        this.isClosed = true
        for (const w of this.waiting) w(null)
        this.waiting = []
        resolve()
      })
    })
    socket.on('error', () => {})
    socket.on('data', (chunk: Buffer) => { this.buf = Buffer.concat([this.buf, chunk]); this.parse() })
    this.parse()
  }

  private parse (): void {
    for (;;) {
      if (this.buf.length < 2) return
      let length = this.buf[1] & 0x7f
      let offset = 2
      if (length === 126) {
        if (this.buf.length < 4) return
        length = this.buf.readUInt16BE(2)
        offset = 4
      } else if (length === 127) {
        if (this.buf.length < 10) return
        length = Number(this.buf.readBigUInt64BE(2))
        offset = 10
      }
      if (this.buf.length < offset + length) return
      const f = { fin: (this.buf[0] & 0x80) !== 0, opcode: this.buf[0] & 0x0f, payload: this.buf.subarray(offset, offset + length) }
      this.buf = this.buf.subarray(offset + length)
      const w = this.waiting.shift()
      if (w !== undefined) w(f)
      else this.frames.push(f)
    }
  }

  /** The next frame, or null if the connection closed first. */
  async next (timeoutMs = 5000): Promise<ServerFrame | null> {
    const f = this.frames.shift()
    if (f !== undefined) return f
    if (this.isClosed) return null
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`no frame within ${timeoutMs} ms`)) }, timeoutMs)
      this.waiting.push((frame) => { clearTimeout(timer); resolve(frame) })
    })
  }

  /** Waits for a Close frame (skipping others) and returns its code and reason. */
  async closeFrame (timeoutMs = 5000): Promise<{ code: number | null, reason: string } | null> {
    for (let i = 0; i < 100; i++) {
      const f = await this.next(timeoutMs)
      if (f === null) return null
      if (f.opcode === 8) {
        return { code: f.payload.length >= 2 ? f.payload.readUInt16BE(0) : null, reason: f.payload.subarray(2).toString() }
      }
    }
    throw new Error('no Close frame among 100 frames')
  }

  write (data: Buffer): void {
    this.socket.write(data)
  }
}

/** Opens a WebSocket by hand (valid handshake) and returns a reader on the raw socket. */
export async function rawWebSocket (port: number, protocol = 'sip'): Promise<FrameReader> {
  const key = newKey()
  const res = await rawRequest(port, request(handshakeLines(port, { 'Sec-WebSocket-Key': key, 'Sec-WebSocket-Protocol': protocol })))
  if (res.status !== 101) throw new Error(`handshake failed: ${res.statusLine}`)
  if (res.headers['sec-websocket-accept'] !== acceptFor(key)) throw new Error('bad Sec-WebSocket-Accept')
  return new FrameReader(res.socket, res.rest)
}
