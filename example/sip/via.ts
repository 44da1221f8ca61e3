import type { SipPeer } from './address'
import { listElements, parseParams, splitList, type Params } from './headers'
import { bareHost, sameHost } from './host'
import { headerKey, type SipMessage, type SipRequest } from './message'
import { TOKEN_CLASS } from './syntax'

/** Via (RFC 3261 §20.42): read here and nowhere else. */

export interface Via {
  /** `SIP/2.0/WS`, upper-cased, the white space RFC 3261 allows around the slashes removed. */
  protocol: string
  host: string
  port: number | null
  params: Params
}

const TOKEN = `${TOKEN_CLASS}+`
/** `sent-protocol LWS sent-by *( SEMI via-params )`, with SWS around the slashes and the colon. */
const VIA = new RegExp(`^(${TOKEN})[ \\t]*/[ \\t]*(${TOKEN})[ \\t]*/[ \\t]*(${TOKEN})[ \\t]+(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9._-]+)(?:[ \\t]*:[ \\t]*(\\d{1,5}))?[ \\t]*(;.*)?$`)

/** One Via value: `SIP/2.0/WS host:port;branch=z9hG4bK...`; null when it is not one. */
export function parseVia (value: string): Via | null {
  const match = VIA.exec(value.trim())
  if (match === null) return null
  const port = match[5] === undefined ? null : Number(match[5])
  if (port !== null && port > 65535) return null
  const params = parseParams(match[6] ?? '')
  if (params === null) return null
  return { protocol: `${match[1]}/${match[2]}/${match[3]}`.toUpperCase(), host: match[4], port, params }
}

/** Every Via value of a message, in order; null when one is malformed or empty (`Via: a;;,;,,`). */
export function allVias (message: SipMessage): Via[] | null {
  const vias: Via[] = []
  for (const value of message.getAll('via').flatMap(listElements)) {
    const via = parseVia(value)
    if (via === null) return null
    vias.push(via)
  }
  return vias
}

/** The values of the first Via line (a line may hold a comma list) and the first of them parsed. */
function readTop (message: SipMessage): { values: string[], via: Via } | null {
  const values = splitList(message.get('via') ?? '')
  const via = parseVia(values[0] ?? '')
  return via === null ? null : { values, via }
}

/** The top Via of a message, or null when it has none or it is malformed. */
export function topVia (message: SipMessage): Via | null {
  return readTop(message)?.via ?? null
}

/**
 * RFC 3261 §18.2.1 `received` and RFC 3581 `rport` on the top Via of a request that came from `source`.
 * Over TCP rport is always filled in, as Kamailio's `force_rport()`: the answer must go back on that
 * connection.
 */
export function markReceived (request: SipRequest, source: SipPeer): void {
  const top = readTop(request)
  if (top === null) return
  const { values, via } = top
  let value = values[0]
  if (!sameHost(via.host, source.address)) value = setParam(value, 'received', source.address)
  if (via.params.has('rport') || source.transport === 'tcp') value = setParam(value, 'rport', String(source.port))
  values[0] = value
  // Only the first Via line changes; `set` would drop the others.
  const index = request.headers.findIndex((h) => headerKey(h.name) === 'via')
  request.headers[index] = { name: request.headers[index].name, value: values.join(', ') }
}

function setParam (via: string, name: string, value: string): string {
  const pattern = new RegExp(`;\\s*${name}(?:\\s*=[^;,]*)?(?=[;,\\s]|$)`, 'i')
  return pattern.test(via) ? via.replace(pattern, `;${name}=${value}`) : `${via};${name}=${value}`
}

/** Where a response for a Via goes (RFC 3261 §18.2.2, RFC 3581 §4). */
export function viaTarget (via: Via): SipPeer {
  const received = via.params.get('received')
  const rport = via.params.get('rport')
  return {
    transport: via.protocol.endsWith('/TCP') ? 'tcp' : 'udp',
    address: bareHost(received ?? via.host),
    port: rport !== undefined && rport !== null && /^\d+$/.test(rport) ? Number(rport) : via.port ?? 5060
  }
}
