/**
 * The SIP torture messages (test/fixtures/sip-torture) and what a proxy does with each:
 *
 * - `forward`: valid; relayed with its meaning unchanged, both ways;
 * - `liberal`: invalid, but the RFC lets an element accept it if it forwards it corrected (RFC 4475
 *   §3.1.2.9, §3.1.2.10: the extra spaces of a request line); relayed with a single-spaced request line;
 * - `refuse`: from a WebSocket client, answered `status`; from the core, dropped with a log line;
 * - `drop`: a response that cannot be read; dropped with a log line, either way.
 */
export type Expectation =
  | { kind: 'forward' }
  | { kind: 'liberal' }
  | { kind: 'refuse', status: number }
  | { kind: 'drop' }

export interface TortureMessage {
  /** The RFC's own name for the message (its file in the RFC's archive). */
  name: string
  rfc: '4475' | '5118'
  section: string
  title: string
  expect: Expectation
  /** In the RFC's notation (RFC 4475 §2), one string a line. */
  lines: readonly string[]
}

/** The message's octets: lines joined with CRLF, `<hex>` and `<repeat>` written out (RFC 4475 §2.2, §2.3). */
export function tortureBytes (message: TortureMessage): Buffer {
  const parts: Buffer[] = []
  const text = message.lines.join('\r\n')
  const notation = /<hex>([0-9A-Fa-f\s]*)<\/hex>|<repeat count=(\d+)>([^<]*)<\/repeat>/g
  let last = 0
  for (let match = notation.exec(text); match !== null; match = notation.exec(text)) {
    parts.push(Buffer.from(text.slice(last, match.index), 'latin1'))
    parts.push(match[1] !== undefined ? Buffer.from(match[1].replace(/\s/g, ''), 'hex') : Buffer.from(match[3].repeat(Number(match[2])), 'latin1'))
    last = match.index + match[0].length
  }
  parts.push(Buffer.from(text.slice(last), 'latin1'))
  return Buffer.concat(parts)
}
