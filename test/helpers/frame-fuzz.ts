import { frame } from './frames'
import type { Rng } from './random'

/**
 * Generated client byte streams (after a valid handshake) and a reference model of what RFC 6455 says the
 * server must do with them. The generator may produce anything; the model reads the final bytes the way a
 * server must, so it also judges what bit flips, truncations and lying lengths made of them.
 */

export interface Message { binary: boolean, data: Buffer }

export type End =
  /** The server must fail the connection with one of these codes. */
  | { kind: 'fail', codes: number[] }
  /** A valid Close from the client: the server answers it with `reply`; `code` null for an empty Close. */
  | { kind: 'close', code: number | null, reply: number }
  /** Nothing wrong so far (the stream may stop inside a frame): the connection stays open. */
  | { kind: 'open' }

export interface Expected {
  /** Messages the server must deliver, in order, before the end. */
  messages: Message[]
  /** Payloads of the Pings before the end: each is answered by a Pong carrying it (§5.5.3). */
  pongs: Buffer[]
  end: End
  /**
   * A text message in progress already holds bytes that no continuation can make UTF-8. §8.1 lets a server
   * fail such a connection at once (1007) or when the message ends.
   */
  mayFailEarly: boolean
}

export interface FrameCase {
  description: string
  bytes: Buffer
  expected: Expected
}

const TEXT = 1
const BINARY = 2
const CLOSE = 8
const PING = 9
const PONG = 10

// ---- model -------------------------------------------------------------------------------------------

const strict = (): TextDecoder => new TextDecoder('utf-8', { fatal: true })

function isUtf8 (data: Buffer): boolean {
  try {
    strict().decode(data)
    return true
  } catch {
    return false
  }
}

/** True when no continuation can turn `prefix` into UTF-8 (a streaming decoder already refuses it). */
function isDeadUtf8 (prefix: Buffer): boolean {
  try {
    strict().decode(prefix, { stream: true })
    return false
  } catch {
    return true
  }
}

/** §7.4: the codes a peer may send (1004-1006 and 1015 are reserved, 1016-2999 unassigned). */
function isSendableCode (code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999)
}

/** What a server with this `maxPayload` must do with `bytes` sent by a client after the handshake. */
export function expectFrames (bytes: Buffer, maxPayload: number): Expected {
  const messages: Message[] = []
  const pongs: Buffer[] = []
  let mayFailEarly = false
  const done = (end: End): Expected => ({ messages, pongs, end, mayFailEarly })
  const fail = (...codes: number[]): Expected => done({ kind: 'fail', codes })
  // The message being assembled from fragments: its opcode (0 when none), parts and size.
  let opcode = 0
  let parts: Buffer[] = []
  let size = 0
  let pos = 0
  for (;;) {
    if (bytes.length - pos < 2) return done({ kind: 'open' })
    const fin = (bytes[pos] & 0x80) !== 0
    const rsv = (bytes[pos] >> 4) & 7
    const op = bytes[pos] & 0x0f
    const masked = (bytes[pos + 1] & 0x80) !== 0
    const len7 = bytes[pos + 1] & 0x7f
    const control = op >= 8
    // §5.2 no extension was agreed, so RSV must be 0; §5.2 opcodes 3-7 and 0xB-0xF are reserved; §5.4 a
    // continuation needs a message to continue, and a new message must wait for the last one's end; §5.5
    // control frames are never fragmented and carry at most 125 bytes (a Close 0 or at least 2, §5.5.1);
    // §5.1 every client frame is masked.
    if (rsv !== 0 || (op >= 3 && op <= 7) || op >= 0xb ||
      (op === 0 && opcode === 0) || ((op === TEXT || op === BINARY) && opcode !== 0) ||
      (control && (!fin || len7 > 125)) || (op === CLOSE && len7 === 1) || !masked) return fail(1002)
    let at = pos + 2
    let length = len7
    if (len7 === 126) {
      if (bytes.length < at + 2) return done({ kind: 'open' })
      length = bytes.readUInt16BE(at)
      at += 2
    } else if (len7 === 127) {
      if (bytes.length < at + 8) return done({ kind: 'open' })
      const big = bytes.readBigUInt64BE(at)
      at += 8
      // §5.2: the most significant bit must be 0; past 2^53 no JavaScript server can count the bytes.
      if (big >= 2n ** 63n) return fail(1002, 1009)
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) return fail(1009)
      length = Number(big)
    }
    // §10.4: the limit is known from the header, before any of the payload is read.
    if (!control && size + length > maxPayload) return fail(1009)
    if (bytes.length < at + 4 + length) return done({ kind: 'open' })
    const key = bytes.subarray(at, at + 4)
    const payload = Buffer.alloc(length)
    for (let i = 0; i < length; i++) payload[i] = bytes[at + 4 + i] ^ key[i & 3]
    pos = at + 4 + length
    if (op === PING) {
      pongs.push(payload)
    } else if (op === CLOSE) {
      if (length === 0) return done({ kind: 'close', code: null, reply: 1000 })
      const code = payload.readUInt16BE(0)
      if (!isSendableCode(code)) return fail(1002)
      if (!isUtf8(payload.subarray(2))) return fail(1007)
      // SPEC §3: a Close 1000 is answered with 1000 "Normal closure"; any other code is echoed.
      return done({ kind: 'close', code, reply: code === 1000 ? 1000 : code })
    } else if (op !== PONG) {
      const type = op === 0 ? opcode : op
      parts.push(payload)
      size += length
      if (!fin) {
        opcode = type
        if (type === TEXT && isDeadUtf8(Buffer.concat(parts))) mayFailEarly = true
        continue
      }
      const data = Buffer.concat(parts)
      opcode = 0
      parts = []
      size = 0
      if (type === TEXT && !isUtf8(data)) return fail(1007)
      messages.push({ binary: type === BINARY, data })
    }
  }
}

// ---- generator ---------------------------------------------------------------------------------------

interface Spec {
  fin: boolean
  rsv: number
  opcode: number
  mask: boolean
  maskKey: Buffer
  payload: Buffer
  /** A length claimed in the header other than the payload's. */
  length?: number
  long64?: boolean
  /** Bytes sent as they are instead of an encoded frame. */
  raw?: Buffer
}

const INVALID_UTF8 = [[0x80], [0xbf], [0xc0, 0x80], [0xc1, 0xbf], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xf0, 0x80, 0x80, 0x80],
  [0xf4, 0x90, 0x80, 0x80], [0xf5, 0x80, 0x80, 0x80], [0xff], [0xfe], [0xc3, 0x28], [0xe2, 0x28, 0xa1]]
const TRUNCATED_UTF8 = [[0xc3], [0xe2, 0x82], [0xf0, 0x9f, 0x98]]
const CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1014, 3000, 4000, 4999]
const BAD_CLOSE_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535]

function randomText (rng: Rng, maxBytes: number): Buffer {
  const target = rng.int(0, maxBytes)
  let text = ''
  let size = 0
  while (size < target) {
    const roll = rng.next()
    let cp: number
    if (roll < 0.6) cp = rng.int(0x20, 0x7e)
    else if (roll < 0.75) cp = rng.int(0x80, 0x7ff)
    else if (roll < 0.9) { cp = rng.int(0x800, 0xfffd); if (cp >= 0xd800 && cp <= 0xdfff) cp -= 0x800 } else cp = rng.int(0x10000, 0x10ffff)
    const ch = String.fromCodePoint(cp)
    text += ch
    size += Buffer.byteLength(ch)
  }
  return Buffer.from(text)
}

function spec (rng: Rng, opcode: number, payload: Buffer, fin = true): Spec {
  return { fin, rsv: 0, opcode, mask: true, maskKey: rng.bytes(4), payload }
}

/** One message as 1-4 frames cut at random byte offsets (a multi-byte character may be cut too). */
function fragments (rng: Rng, opcode: number, data: Buffer, pingBetween: boolean): Spec[] {
  const count = rng.bool(0.6) ? 1 : rng.int(2, 4)
  const cuts = Array.from({ length: count - 1 }, () => rng.int(0, data.length)).sort((a, b) => a - b)
  const bounds = [0, ...cuts, data.length]
  const specs: Spec[] = []
  for (let i = 0; i < count; i++) {
    specs.push(spec(rng, i === 0 ? opcode : 0, data.subarray(bounds[i], bounds[i + 1]), i === count - 1))
    if (pingBetween && i < count - 1 && rng.bool(0.5)) specs.push(spec(rng, PING, rng.bytes(rng.int(0, 20))))
  }
  return specs
}

function withBadUtf8 (rng: Rng, text: Buffer): Buffer {
  // A truncated sequence is wrong only because the message ends there; the others are wrong anywhere.
  if (rng.bool(0.2)) return Buffer.concat([text, Buffer.from(rng.pick(TRUNCATED_UTF8))])
  const at = boundary(text, rng)
  return Buffer.concat([text.subarray(0, at), Buffer.from(rng.pick(INVALID_UTF8)), text.subarray(at)])
}

/** A byte offset in `text` that does not fall inside a character. */
function boundary (text: Buffer, rng: Rng): number {
  let at = rng.int(0, text.length)
  while (at < text.length && (text[at] & 0xc0) === 0x80) at++
  return at
}

const MUTATIONS = ['rsv', 'unmasked', 'reserved-opcode', 'big-control', 'fragmented-control', 'orphan-continuation', 'interleaved',
  'bad-utf8', 'bad-utf8-split', 'oversize', 'oversize-fragments', 'huge-64', 'long64-small', 'length-short', 'length-long',
  'zero-mask', 'bit-flip', 'truncate', 'garbage'] as const
type Mutation = typeof MUTATIONS[number]

export function generateFrames (rng: Rng, maxPayload: number): FrameCase {
  const notes: string[] = []
  let specs: Spec[] = []
  for (let i = rng.int(1, 5); i > 0; i--) {
    const roll = rng.next()
    if (roll < 0.4) {
      const text = randomText(rng, 300)
      specs.push(...fragments(rng, TEXT, text, true))
      notes.push(`text(${text.length})`)
    } else if (roll < 0.7) {
      const data = rng.bytes(rng.int(0, 300))
      specs.push(...fragments(rng, BINARY, data, true))
      notes.push(`binary(${data.length})`)
    } else if (roll < 0.85) {
      specs.push(spec(rng, PING, rng.bytes(rng.int(0, 125))))
      notes.push('ping')
    } else {
      specs.push(spec(rng, PONG, rng.bytes(rng.int(0, 125))))
      notes.push('pong')
    }
  }
  if (rng.bool(0.3)) {
    const roll = rng.next()
    let payload: Buffer
    if (roll < 0.1) payload = Buffer.alloc(0)
    else if (roll < 0.6) payload = Buffer.concat([u16(rng.pick(CLOSE_CODES)), randomText(rng, 60).subarray(0, 60)])
    else if (roll < 0.8) payload = Buffer.concat([u16(rng.pick(BAD_CLOSE_CODES)), Buffer.from('x')])
    else if (roll < 0.9) payload = Buffer.from([0x03])
    else payload = Buffer.concat([u16(1000), withBadUtf8(rng, Buffer.from('bye'))])
    // A valid Close may be followed by data the server must ignore.
    specs.push(spec(rng, CLOSE, payload))
    if (rng.bool(0.3)) specs.push(spec(rng, TEXT, Buffer.from('after close')))
    notes.push(`close(${payload.length})`)
  }

  let bytesMutation: Mutation | null = null
  for (let i = rng.bool(0.25) ? 0 : rng.int(1, 2); i > 0; i--) {
    const m: Mutation = rng.pick(MUTATIONS)
    notes.push(m)
    const target = rng.int(0, specs.length - 1)
    switch (m) {
      case 'rsv': specs[target].rsv = rng.int(1, 7); break
      case 'unmasked': specs[target].mask = false; break
      case 'reserved-opcode': specs[target].opcode = rng.pick([3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]); break
      case 'big-control': specs.splice(target, 0, spec(rng, rng.pick([PING, PONG, CLOSE]), rng.bytes(rng.int(126, 400)))); break
      case 'fragmented-control': specs.splice(target, 0, spec(rng, rng.pick([PING, PONG]), rng.bytes(rng.int(0, 20)), false)); break
      case 'orphan-continuation': specs.splice(rng.bool() ? 0 : specs.length, 0, spec(rng, 0, randomText(rng, 20), rng.bool())); break
      case 'interleaved': {
        const first = spec(rng, rng.pick([TEXT, BINARY]), randomText(rng, 30), false)
        specs.splice(target, 0, first, spec(rng, rng.pick([TEXT, BINARY]), randomText(rng, 30)), spec(rng, 0, randomText(rng, 30)))
        break
      }
      case 'bad-utf8':
        specs.splice(target, 0, spec(rng, TEXT, withBadUtf8(rng, randomText(rng, 100))))
        break
      case 'bad-utf8-split': {
        // The bad sequence straddles two fragments, so no single frame holds all of it.
        const bad = Buffer.from(rng.pick(INVALID_UTF8.filter((s) => s.length > 1)))
        const head = randomText(rng, 40)
        const cut = rng.int(1, bad.length - 1)
        specs.splice(target, 0, spec(rng, TEXT, Buffer.concat([head, bad.subarray(0, cut)]), false), spec(rng, 0, Buffer.concat([bad.subarray(cut), randomText(rng, 40)])))
        break
      }
      case 'oversize':
        specs.splice(target, 0, spec(rng, rng.pick([TEXT, BINARY]), Buffer.alloc(rng.int(maxPayload + 1, 3 * maxPayload), 0x61)))
        break
      case 'oversize-fragments': {
        const part = Math.ceil(maxPayload / 3) + rng.int(1, 50)
        specs.splice(target, 0, ...[0, 1, 2, 3].map((i) => spec(rng, i === 0 ? BINARY : 0, Buffer.alloc(part, 0x62), i === 3)))
        break
      }
      case 'huge-64': {
        const claim = rng.pick([2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n, BigInt(maxPayload) * 1000n, 2n ** 32n])
        const header = Buffer.alloc(14)
        header[0] = 0x80 | rng.pick([TEXT, BINARY])
        header[1] = 0x80 | 127
        header.writeBigUInt64BE(claim, 2)
        rng.bytes(4).copy(header, 10)
        specs.splice(target, 0, { ...spec(rng, BINARY, Buffer.alloc(0)), raw: Buffer.concat([header, rng.bytes(rng.int(0, 64))]) })
        notes.push(`claims ${claim}`)
        break
      }
      case 'long64-small': specs[target].long64 = true; break
      case 'length-short': specs[target].length = rng.int(0, Math.max(0, specs[target].payload.length - 1)); break
      case 'length-long': specs[target].length = specs[target].payload.length + rng.int(1, 200); break
      case 'zero-mask': specs[target].maskKey = Buffer.alloc(4); break
      case 'bit-flip': case 'truncate': case 'garbage': bytesMutation = m; break
    }
  }

  let bytes = Buffer.concat(specs.map((s) => s.raw ?? frame(s.opcode, s.payload, { fin: s.fin, rsv: s.rsv, mask: s.mask, maskKey: s.maskKey, length: s.length, long64: s.long64 })))
  if (bytesMutation === 'bit-flip' && bytes.length > 0) {
    const at = rng.int(0, bytes.length - 1)
    bytes[at] ^= 1 << rng.int(0, 7)
  } else if (bytesMutation === 'truncate') {
    bytes = bytes.subarray(0, rng.int(0, bytes.length))
  } else if (bytesMutation === 'garbage') {
    bytes = Buffer.concat([bytes, rng.bytes(rng.int(1, 64))])
  }
  return { description: notes.join(', '), bytes, expected: expectFrames(bytes, maxPayload) }
}

function u16 (n: number): Buffer {
  const buf = Buffer.alloc(2)
  buf.writeUInt16BE(n)
  return buf
}
