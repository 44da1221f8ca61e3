import { isUtf8 } from 'node:buffer'

/**
 * SIP messages (RFC 3261 §7) for a proxy that reads a few headers and forwards the rest untouched. The
 * npm SIP parsers are either unmaintained (`sip`) or part of a larger framework with no types
 * (`drachtio-sip`); the UAs' own parsers (JsSIP, sip.js) need a UA.
 *
 * A header read from the wire keeps its exact text (`raw`: name, spacing, folded lines, compact form)
 * and is written back as it came; only a header the proxy set or added is written from its name and
 * value. So a relayed message differs from the received one, byte for byte, only where the proxy changed
 * it. Look-ups go through the canonical lower-case long form, so `v` finds `Via` (RFC 3261 §7.3.3). The
 * body is bytes: a multipart body may hold binary parts.
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

export interface SipHeader {
  /** As received (or as added), e.g. `Via` or `v`. */
  name: string
  /** The value, folds joined with one space and the ends trimmed. */
  value: string
  /** The header exactly as received, folds included (CRLF-separated), without its final CRLF. */
  raw?: string
}

/** The canonical key of a header name: lower-case, compact forms expanded. */
export function headerKey (name: string): string {
  const lower = name.toLowerCase()
  return COMPACT_FORMS[lower] ?? lower
}

abstract class SipMessageBase {
  headers: SipHeader[]
  body: Buffer
  /**
   * How the header section's bytes became text: UTF-8, or Latin-1 when they were not valid UTF-8, so
   * writing it back gives the same bytes.
   */
  encoding: 'utf8' | 'latin1' = 'utf8'

  constructor (headers: SipHeader[] = [], body: Buffer | string = Buffer.alloc(0)) {
    this.headers = headers
    this.body = typeof body === 'string' ? Buffer.from(body) : body
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
    return this.take(name, 'first', split)
  }

  /** Removes and returns the last element of the last line of `name` (RFC 3261 §16.4 strict-route fix-up). */
  pop (name: string, split: (value: string) => string[]): string | undefined {
    return this.take(name, 'last', split)
  }

  private take (name: string, end: 'first' | 'last', split: (value: string) => string[]): string | undefined {
    const key = headerKey(name)
    const indexes = this.headers.flatMap((h, i) => headerKey(h.name) === key ? [i] : [])
    const index = (end === 'first' ? indexes[0] : indexes.at(-1)) ?? -1
    if (index === -1) return undefined
    const values = split(this.headers[index].value)
    const taken = end === 'first' ? values.shift() : values.pop()
    if (values.length === 0) this.headers.splice(index, 1)
    else this.headers[index] = { name: this.headers[index].name, value: values.join(', ') }
    return taken
  }

  /**
   * The wire form. Headers as received are written back byte for byte. Content-Length is always there
   * and always right (RFC 3261 §20.14: counted in bytes): the received line when it still is, else a new
   * value in its place (or last); any second Content-Length goes.
   */
  toBuffer (): Buffer {
    const length = this.body.length
    let head = this.startLine() + '\r\n'
    let wroteLength = false
    for (const h of this.headers) {
      if (headerKey(h.name) === 'content-length') {
        if (!wroteLength) head += (h.raw !== undefined && Number(h.value) === length && /^\d+$/.test(h.value) ? h.raw : `${h.name}: ${length}`) + '\r\n'
        wroteLength = true
      } else {
        head += (h.raw ?? `${h.name}: ${h.value}`) + '\r\n'
      }
    }
    if (!wroteLength) head += `Content-Length: ${length}\r\n`
    return Buffer.concat([Buffer.from(head + '\r\n', this.encoding), this.body])
  }

  /** The wire form as text, for logs and tests. */
  toString (): string {
    return this.toBuffer().toString()
  }

  /**
   * What goes in one WebSocket message (RFC 7118 §5.1): text when the message is valid UTF-8, a binary
   * message when it is not (a body with binary parts), since a text message must be UTF-8.
   */
  payload (): string | Buffer {
    const bytes = this.toBuffer()
    return isUtf8(bytes) ? bytes.toString('utf8') : bytes
  }
}

export class SipRequest extends SipMessageBase {
  readonly kind = 'request'

  constructor (public method: string, public uri: string, headers?: SipHeader[], body?: Buffer | string) {
    super(headers, body)
  }

  /** Always written with single spaces, whatever the request line had (RFC 4475 §3.1.2.9). */
  startLine (): string {
    return `${this.method} ${this.uri} SIP/2.0`
  }
}

export class SipResponse extends SipMessageBase {
  readonly kind = 'response'

  constructor (public status: number, public reason: string, headers?: SipHeader[], body?: Buffer | string) {
    super(headers, body)
  }

  startLine (): string {
    return `SIP/2.0 ${this.status} ${this.reason}`
  }
}

export type SipMessage = SipRequest | SipResponse
