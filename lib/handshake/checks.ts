import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http'
import { TOKEN, WS_VERSION } from '../constants'
import { isInjected } from './injected'
import type { Refusal } from './refusal'

// RFC 6455 §4.1: the key is 16 random bytes, base64-encoded (always 24 characters ending in '==').
const KEY = /^[+/0-9A-Za-z]{21}[AQgw]==$/

/**
 * Splits `Sec-WebSocket-Protocol` into names, keeping the client's order. Returns null when the header is
 * not a comma-separated list of distinct tokens: such a request is malformed, not merely unsupported.
 */
export function parseProtocols (header: string | undefined): string[] | null {
  if (header === undefined) return []
  const names: string[] = []
  for (const part of header.split(',')) {
    const name = part.trim()
    if (!TOKEN.test(name) || names.includes(name)) return null
    names.push(name)
  }
  return names
}

function hasToken (header: string | undefined, token: string): boolean {
  if (header === undefined) return false
  for (const part of header.split(',')) if (part.trim().toLowerCase() === token) return true
  return false
}

/** The headers every "what we support" refusal carries, as Kamailio's 400 does. */
export function supportedHeaders (protocols: readonly string[]): OutgoingHttpHeaders {
  return { 'Sec-WebSocket-Protocol': protocols.join(', '), 'Sec-WebSocket-Version': String(WS_VERSION) }
}

/**
 * RFC 6455 §4.2.1 checks of an opening handshake, in the order the RFC lists them. Returns the refusal,
 * or null when the request is a valid WebSocket handshake. Sub-protocol choice is separate
 * (`chooseProtocol`) because an `xhttp:request` hook may have chosen already.
 */
export function checkRequest (req: IncomingMessage, headers: IncomingHttpHeaders = req.headers): Refusal | null {
  if (req.method !== 'GET') {
    return { status: 405, headers: { Allow: 'GET' }, message: `The WebSocket opening handshake must be a GET, not ${String(req.method)}` }
  }
  // An injected request (injectWS) gives only `httpVersion`.
  const [major, minor] = req.httpVersionMajor !== undefined ? [req.httpVersionMajor, req.httpVersionMinor] : String(req.httpVersion).split('.').map(Number)
  if (major < 1 || (major === 1 && minor < 1)) {
    return { status: 400, message: `The WebSocket opening handshake needs HTTP/1.1 or later, not HTTP/${req.httpVersion}` }
  }
  if (major > 1) {
    // Node's HTTP/1 parser takes "HTTP/2.0" in a request line, but HTTP/2 has no such message syntax and
    // carries WebSockets by extended CONNECT (RFC 8441), never by an Upgrade.
    return { status: 505, message: `HTTP/${req.httpVersion} in an HTTP/1 request line; the WebSocket opening handshake is HTTP/1.1` }
  }
  // Host names the server a request crossed a network to reach; an injected one has none to name.
  if ((headers.host === undefined || headers.host === '') && !isInjected(req)) {
    return { status: 400, message: 'Missing Host header' }
  }
  if (!hasToken(headers.upgrade, 'websocket')) {
    return { status: 400, message: 'Missing "Upgrade: websocket" header' }
  }
  if (headers.upgrade?.trim().toLowerCase() !== 'websocket') {
    // ws takes only "websocket" alone and would refuse the rest itself, past our statistics and log.
    return { status: 400, message: `Upgrade must be "websocket" alone, not "${String(headers.upgrade)}"` }
  }
  if (!hasToken(headers.connection, 'upgrade')) {
    return { status: 400, message: 'Missing "Connection: Upgrade" header' }
  }
  const key = headers['sec-websocket-key']
  if (key === undefined || !KEY.test(key)) {
    return { status: 400, message: 'Missing or invalid Sec-WebSocket-Key: expected 16 bytes in base64' }
  }
  // injectWS sends the version as a number.
  const version = headers['sec-websocket-version'] as string | number | undefined
  if (version === undefined || version === '') {
    return { status: 400, headers: { 'Sec-WebSocket-Version': String(WS_VERSION) }, message: 'Missing Sec-WebSocket-Version header' }
  }
  if (String(version).trim() !== String(WS_VERSION)) {
    // §4.4: answer with the versions we speak so the client can retry with one of them.
    return { status: 426, headers: { 'Sec-WebSocket-Version': String(WS_VERSION) }, message: `Unsupported WebSocket version ${version}; this server speaks ${WS_VERSION}` }
  }
  return null
}

/**
 * Picks the sub-protocol: the one a hook chose if any, else the first the client offered that is enabled.
 * Comparison ignores case (Kamailio lower-cases), the answer echoes the client's spelling as §4.2.2 asks.
 * A hook's choice that cannot be answered is the server's mistake, not the client's: a 500.
 */
export function chooseProtocol (offered: readonly string[], enabled: readonly string[], chosenByHook?: string): { protocol: string } | Refusal {
  if (chosenByHook !== undefined) {
    const wanted = chosenByHook.toLowerCase()
    if (!enabled.includes(wanted)) {
      return { status: 500, message: `An xhttp:request hook set request.wsSubProtocol to "${chosenByHook}", which is not enabled (subProtocols: ${enabled.join(', ')})` }
    }
    const match = offered.find((name) => name.toLowerCase() === wanted)
    if (match !== undefined) return { protocol: match }
    return { status: 500, message: `An xhttp:request hook set request.wsSubProtocol to "${chosenByHook}", which the client did not offer (offered: ${offered.join(', ') || 'none'})` }
  }
  for (const name of offered) {
    if (enabled.includes(name.toLowerCase())) return { protocol: name }
  }
  return {
    status: 400,
    headers: supportedHeaders(enabled),
    message: offered.length === 0
      ? `Missing Sec-WebSocket-Protocol header; supported: ${enabled.join(', ')}`
      : `None of the offered sub-protocols (${offered.join(', ')}) is supported; supported: ${enabled.join(', ')}`
  }
}

/** The CORS header Kamailio's `cors_mode` adds to the 101 reply. */
export function corsHeader (mode: 0 | 1 | 2, origin: string | undefined): string | null {
  if (mode === 1) return 'Access-Control-Allow-Origin: *'
  if (mode === 2 && origin !== undefined && origin !== '') return `Access-Control-Allow-Origin: ${origin}`
  return null
}
