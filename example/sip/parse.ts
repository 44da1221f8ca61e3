import { SipRequest, SipResponse, type SipHeader, type SipMessage } from './message'
import { isUtf8 } from 'node:buffer'
import { TOKEN } from './syntax'

/**
 * Reading one SIP message from its bytes (RFC 3261 §7): the start line, the header lines with their
 * folds, and the body that Content-Length frames. What the header values mean is validate.ts's job; this
 * only refuses what cannot be framed.
 */

/**
 * Why a message could not be read. `status` is the answer a request gets (505 for an unsupported
 * version, else 400); `head` is what was read before the problem (the start line and header lines),
 * enough to address that answer; null when even the start line was not a request's or a response's.
 */
export class SipParseError extends Error {
  override name = 'SipParseError'
  readonly code = 'ERR_SIP_PARSE'

  constructor (message: string, readonly head: SipMessage | null = null, readonly status = 400) {
    super(message)
  }
}

// Liberal in the white space between the parts of a request line (RFC 4475 §3.1.2.9 and §3.1.2.10 allow
// it); the version is checked apart, to answer 505 rather than 400.
const REQUEST_LINE = /^([^ \t]+)[ \t]+([^ \t]+)[ \t]+SIP\/(\d+\.\d+)[ \t]*$/i
const STATUS_LINE = /^SIP\/(\d+\.\d+) (\d{3})(?: (.*))?$/i

/** Parses one whole message: a WebSocket message (RFC 7118 §5.1), a UDP datagram or a framed TCP message. */
export function parseSip (input: string | Buffer): SipMessage {
  let bytes = typeof input === 'string' ? Buffer.from(input) : input
  // RFC 3261 §7.5: CRLFs before the start line are ignored.
  let skip = 0
  while (bytes[skip] === 0x0d || bytes[skip] === 0x0a) skip++
  bytes = bytes.subarray(skip)
  const end = headEnd(bytes)
  const head = bytes.subarray(0, end?.at ?? bytes.length)
  // Header values are UTF-8 text (RFC 3261 §7.3.1); a head that is not is read byte for byte as Latin-1,
  // so that forwarding it changes nothing.
  const encoding = isUtf8(head) ? 'utf8' : 'latin1'
  const lines = head.toString(encoding).split(/\r?\n/)
  // A message cut short may end in a line break of its last header line.
  if (end === null && lines.length > 1 && lines[lines.length - 1] === '') lines.pop()
  const { message, problem } = startLine(lines[0])
  if (message === null) throw new SipParseError(problem?.text ?? 'bad start line')
  message.encoding = encoding
  const fault = readHeaders(lines, message)
  if (fault !== null) throw new SipParseError(fault, message)
  if (problem !== null) throw new SipParseError(problem.text, message, problem.status)
  if (end === null) throw new SipParseError('no empty line after the headers', message)
  message.body = frameBody(message, bytes.subarray(end.at + end.length))
  return message
}

function headEnd (bytes: Buffer): { at: number, length: number } | null {
  const crlf = bytes.indexOf('\r\n\r\n')
  const lf = bytes.indexOf('\n\n')
  if (crlf === -1 && lf === -1) return null
  if (crlf !== -1 && (lf === -1 || crlf < lf)) return { at: crlf, length: 4 }
  return { at: lf, length: 2 }
}

/**
 * The message a start line begins, or the problem with it. A line that is no response's but begins
 * with a method still makes a request, so its headers are read for the 400 (RFC 4475 §3.1.2.8: a
 * Request-URI with white space in it); anything else makes nothing.
 */
function startLine (line: string): { message: SipMessage | null, problem: { text: string, status: number } | null } {
  const request = REQUEST_LINE.exec(line)
  if (request !== null && TOKEN.test(request[1])) {
    const message = new SipRequest(request[1], request[2])
    return { message, problem: request[3] === '2.0' ? null : { text: `SIP version ${request[3]} is not supported`, status: 505 } }
  }
  const bad = { text: `bad start line: ${JSON.stringify(line.slice(0, 80))}`, status: 400 }
  const status = STATUS_LINE.exec(line)
  if (status === null || Number(status[2]) < 100 || Number(status[2]) > 699) {
    const method = /^([^ \t]+)[ \t]/.exec(line)?.[1]
    return { message: method !== undefined && TOKEN.test(method) && !/^SIP\//i.test(method) ? new SipRequest(method, '') : null, problem: bad }
  }
  if (status[1] !== '2.0') return { message: null, problem: { text: `SIP version ${status[1]} is not supported`, status: 400 } }
  return { message: new SipResponse(Number(status[2]), status[3] ?? ''), problem: null }
}

/** Fills `message.headers` from the header lines; the problem with the first bad line, or null. */
function readHeaders (lines: string[], message: SipMessage): string | null {
  for (const field of headerFields(lines.slice(1))) {
    if (typeof field === 'string') return field
    message.headers.push(field)
  }
  return null
}

/**
 * The header fields of a header section's lines (the start line left out): each line with the folded
 * lines after it (RFC 3261 §7.3.1: a line starting with white space continues the one before), or the
 * problem with a line that is not `name: value`.
 */
export function * headerFields (lines: string[]): Generator<SipHeader | string> {
  let current: SipHeader | null = null
  for (const line of lines) {
    if (line.startsWith(' ') || line.startsWith('\t')) {
      if (current === null) {
        yield 'continuation line before any header'
        return
      }
      current.value = `${current.value} ${line.trim()}`.trim()
      current.raw = `${current.raw ?? ''}\r\n${line}`
      continue
    }
    if (current !== null) yield current
    const colon = line.indexOf(':')
    if (colon === -1) {
      yield `header line without a colon: ${JSON.stringify(line.slice(0, 80))}`
      return
    }
    const name = line.slice(0, colon).replace(/[ \t]+$/, '')
    if (!TOKEN.test(name)) {
      yield `bad header name: ${JSON.stringify(name.slice(0, 80))}`
      return
    }
    current = { name, value: line.slice(colon + 1).trim(), raw: line }
  }
  if (current !== null) yield current
}

/**
 * The body, by Content-Length when there is one: bytes past it are discarded as on a datagram (RFC 3261
 * §18.3, RFC 4475 §3.1.1.8); without one, the rest of the message (a message-based transport frames it).
 */
function frameBody (message: SipMessage, rest: Buffer): Buffer {
  const lengths = message.getAll('content-length')
  if (lengths.length === 0) return rest
  const length = contentLength(lengths)
  if (typeof length === 'string') throw new SipParseError(length, message)
  if (length > rest.length) throw new SipParseError(`body is ${rest.length} bytes, Content-Length says ${length}`, message)
  return rest.subarray(0, length)
}

/** The one Content-Length a message has, or why there is not one (RFC 4475 §3.1.2.3, §3.3.12). */
export function contentLength (values: string[]): number | string {
  if (values.length > 1) return 'more than one Content-Length'
  if (!/^\d{1,9}$/.test(values[0])) return `bad Content-Length: ${JSON.stringify(values[0].slice(0, 20))}`
  return Number(values[0])
}
