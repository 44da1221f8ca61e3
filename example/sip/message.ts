import { TOKEN } from './headers'

/**
 * A small SIP message parser and serializer (RFC 3261 §7), enough for a proxy that reads a few headers
 * and forwards the rest untouched. The npm SIP parsers are either unmaintained (`sip`) or part of a
 * larger framework with no types (`drachtio-sip`); the UAs' own parsers (JsSIP, sip.js) need a UA.
 *
 * Header names keep the spelling they arrived with, so a relayed message differs from the received one
 * only where the proxy changed it; look-ups go through the canonical lower-case long form, so `v` finds
 * `Via` (RFC 3261 §7.3.3).
 */

/** RFC 3261 §7.3.3 and the IANA SIP header registry's compact forms. */
export const COMPACT_FORMS: Readonly<Record<string, string>> = {
  a: 'accept-contact',
  b: 'referred-by',
  c: 'content-type',
  d: 'request-disposition',
  e: 'content-encoding',
  f: 'from',
  i: 'call-id',
  j: 'reject-contact',
  k: 'supported',
  l: 'content-length',
  m: 'contact',
  n: 'identity-info',
  o: 'event',
  r: 'refer-to',
  s: 'subject',
  t: 'to',
  u: 'allow-events',
  v: 'via',
  x: 'session-expires',
  y: 'identity'
}

const REQUEST_LINE = /^([A-Za-z0-9.!%*_+`'~-]+) (\S+) (SIP\/2\.0)$/i
const STATUS_LINE = /^(SIP\/2\.0) ([1-6]\d\d)(?: (.*))?$/i

export class SipParseError extends Error {
  override name = 'SipParseError'
  readonly code = 'ERR_SIP_PARSE'
}

export interface SipHeader {
  /** As received (or as added), e.g. `Via` or `v`. */
  name: string
  value: string
}

/** The canonical key of a header name: lower-case, compact forms expanded. */
export function headerKey (name: string): string {
  const lower = name.toLowerCase()
  return COMPACT_FORMS[lower] ?? lower
}

abstract class SipMessageBase {
  headers: SipHeader[]
  body: string

  constructor (headers: SipHeader[] = [], body = '') {
    this.headers = headers
    this.body = body
  }

  abstract startLine (): string

  has (name: string): boolean {
    const key = headerKey(name)
    return this.headers.some((h) => headerKey(h.name) === key)
  }

  /** The first header line's value, or undefined. */
  get (name: string): string | undefined {
    const key = headerKey(name)
    return this.headers.find((h) => headerKey(h.name) === key)?.value
  }

  /** Every header line's value, in order (a line holding a comma list is one entry). */
  getAll (name: string): string[] {
    const key = headerKey(name)
    return this.headers.filter((h) => headerKey(h.name) === key).map((h) => h.value)
  }

  /** Replaces the first line's value (keeping its place and spelling) and removes the others; appends if absent. */
  set (name: string, value: string): this {
    const key = headerKey(name)
    const first = this.headers.findIndex((h) => headerKey(h.name) === key)
    if (first === -1) {
      this.headers.push({ name, value })
      return this
    }
    this.headers[first] = { name: this.headers[first].name, value }
    this.headers = this.headers.filter((h, i) => i <= first || headerKey(h.name) !== key)
    return this
  }

  /** Adds a line above every other (Via and Record-Route grow at the top, RFC 3261 §16.6). */
  prepend (name: string, value: string): this {
    this.headers.unshift({ name, value })
    return this
  }

  remove (name: string): this {
    const key = headerKey(name)
    this.headers = this.headers.filter((h) => headerKey(h.name) !== key)
    return this
  }

  /**
   * Removes and returns the first element of the first line of `name`, where a line may hold a comma
   * list (`Via: a, b`): a proxy popping its Via must leave the other values of that line in place.
   */
  shift (name: string, split: (value: string) => string[]): string | undefined {
    const key = headerKey(name)
    const index = this.headers.findIndex((h) => headerKey(h.name) === key)
    if (index === -1) return undefined
    const values = split(this.headers[index].value)
    const first = values.shift()
    if (values.length === 0) this.headers.splice(index, 1)
    else this.headers[index] = { name: this.headers[index].name, value: values.join(', ') }
    return first
  }

  /**
   * The wire form. Content-Length is always written and always right (RFC 3261 §20.14: counted in bytes),
   * in the place the message had it, or last.
   */
  toString (): string {
    const length = String(Buffer.byteLength(this.body))
    let lines = this.startLine() + '\r\n'
    let wroteLength = false
    for (const h of this.headers) {
      if (headerKey(h.name) === 'content-length') {
        if (!wroteLength) lines += `${h.name}: ${length}\r\n`
        wroteLength = true
      } else {
        lines += `${h.name}: ${h.value}\r\n`
      }
    }
    if (!wroteLength) lines += `Content-Length: ${length}\r\n`
    return lines + '\r\n' + this.body
  }
}

export class SipRequest extends SipMessageBase {
  readonly kind = 'request'

  constructor (public method: string, public uri: string, headers?: SipHeader[], body?: string) {
    super(headers, body)
  }

  startLine (): string {
    return `${this.method} ${this.uri} SIP/2.0`
  }
}

export class SipResponse extends SipMessageBase {
  readonly kind = 'response'

  constructor (public status: number, public reason: string, headers?: SipHeader[], body?: string) {
    super(headers, body)
  }

  startLine (): string {
    return `SIP/2.0 ${this.status} ${this.reason}`
  }
}

export type SipMessage = SipRequest | SipResponse

function headEnd (text: string): { end: number, sep: number } | null {
  const crlf = text.indexOf('\r\n\r\n')
  const lf = text.indexOf('\n\n')
  if (crlf === -1 && lf === -1) return null
  if (crlf !== -1 && (lf === -1 || crlf < lf)) return { end: crlf, sep: 4 }
  return { end: lf, sep: 2 }
}

/**
 * Parses one SIP message, as carried whole in one WebSocket message (RFC 7118 §5.1). A Buffer must be
 * UTF-8. Throws SipParseError with a message fit for a log line.
 */
export function parseSip (input: string | Buffer): SipMessage {
  let text: string
  if (typeof input === 'string') {
    text = input
  } else {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(input)
    } catch {
      throw new SipParseError('not UTF-8 text')
    }
  }
  // RFC 3261 §7.5: CRLFs before the start line are ignored.
  text = text.replace(/^(?:\r?\n)+/, '')
  const end = headEnd(text)
  if (end === null) throw new SipParseError('no empty line after the headers')
  const lines = text.slice(0, end.end).split(/\r?\n/)
  const rest = text.slice(end.end + end.sep)

  const start = lines[0]
  let message: SipMessage
  const request = REQUEST_LINE.exec(start)
  if (request !== null) {
    message = new SipRequest(request[1], request[2])
  } else {
    const status = STATUS_LINE.exec(start)
    if (status === null) throw new SipParseError(`bad start line: ${JSON.stringify(start.slice(0, 80))}`)
    message = new SipResponse(Number(status[2]), status[3] ?? '')
  }

  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]
    if (line.startsWith(' ') || line.startsWith('\t')) {
      // RFC 3261 §7.3.1 line folding: the continuation is the previous value plus one space.
      const last = message.headers.at(-1)
      if (last === undefined) throw new SipParseError('continuation line before any header')
      last.value = `${last.value} ${line.trim()}`
      continue
    }
    const colon = line.indexOf(':')
    if (colon === -1) throw new SipParseError(`header line without a colon: ${JSON.stringify(line.slice(0, 80))}`)
    const name = line.slice(0, colon).trimEnd()
    if (!TOKEN.test(name)) throw new SipParseError(`bad header name: ${JSON.stringify(name.slice(0, 80))}`)
    message.headers.push({ name, value: line.slice(colon + 1).trim() })
  }

  const lengths = message.getAll('content-length')
  if (lengths.length === 0) {
    // Over a message-based transport the body is the rest of the message (RFC 3261 §18.3).
    message.body = rest
  } else {
    if (lengths.some((value) => value !== lengths[0])) throw new SipParseError('conflicting Content-Length headers')
    if (!/^\d{1,9}$/.test(lengths[0])) throw new SipParseError(`bad Content-Length: ${JSON.stringify(lengths[0].slice(0, 20))}`)
    const length = Number(lengths[0])
    const bytes = Buffer.from(rest)
    if (length > bytes.length) throw new SipParseError(`body is ${bytes.length} bytes, Content-Length says ${length}`)
    // Bytes past Content-Length are discarded, as on a datagram transport (RFC 3261 §18.3).
    message.body = length === bytes.length ? rest : bytes.subarray(0, length).toString()
  }
  return message
}
