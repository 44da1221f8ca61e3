/**
 * The application behaviour every bench target shares: a SIP OPTIONS (RFC 3261 §11) answered with 200 OK,
 * the way Kamailio's `sl_send_reply("200", "OK")` does it — Via, From, To (with a tag), Call-ID and CSeq
 * copied from the request. Kept minimal on purpose, so the figures show transport cost, not a SIP parser.
 */

/**
 * The request the load generators send (RFC 7118 §5: a `.invalid` Via host over WebSocket). With `size`,
 * a body of `x`s makes the whole message that many bytes: the larger sizes stand for MSRP chunks.
 */
export function optionsRequest (tag: string, size = 0): string {
  const head = `OPTIONS sip:bench@127.0.0.1 SIP/2.0\r\n` +
    `Via: SIP/2.0/WS bench.invalid;branch=z9hG4bK-${tag}\r\n` +
    'Max-Forwards: 70\r\n' +
    `From: <sip:load@bench.invalid>;tag=${tag}\r\n` +
    'To: <sip:bench@127.0.0.1>\r\n' +
    `Call-ID: ${tag}@bench.invalid\r\n` +
    'CSeq: 1 OPTIONS\r\n'
  const bare = head + 'Content-Length: 0\r\n\r\n'
  if (size <= bare.length) return bare
  // The Content-Length digits count too: find the body length whose whole message is `size` bytes.
  let body = size - bare.length
  while (head.length + `Content-Length: ${body}\r\n\r\n`.length + body > size) body--
  return `${head}Content-Length: ${body}\r\n\r\n${'x'.repeat(body)}`
}

const COPIED = /^(?:via|v|from|f|to|t|call-id|i|cseq)\s*:/i

/** 200 OK for an OPTIONS; null for anything else (the targets ignore it, as a stateless edge would). */
export function answerOptions (request: string): string | null {
  if (!request.startsWith('OPTIONS ')) return null
  const end = request.indexOf('\r\n\r\n')
  const lines = request.slice(0, end === -1 ? request.length : end).split('\r\n')
  let head = 'SIP/2.0 200 OK\r\n'
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]
    if (!COPIED.test(line)) continue
    head += /^(?:to|t)\s*:/i.test(line) && !line.includes(';tag=') ? `${line};tag=bench\r\n` : `${line}\r\n`
  }
  return head + 'Content-Length: 0\r\n\r\n'
}
