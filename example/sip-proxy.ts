import { createHmac, randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { Registrar } from './registrar'
import { formatHost, parseCSeq, parseNameAddr, parseUri, parseVia, splitList, type NameAddr, type SipUri } from './sip-header'
import { parseSip, SipParseError, SipRequest, SipResponse, type SipMessage } from './sip-message'

/** What the proxy needs to know about a connection, from the `websocket:open` event. */
export interface ConnectionLocal {
  localAddress: string
  localPort: number
  /** The Host header of the upgrade request: a Route naming it names this proxy. */
  host?: string
  secure?: boolean
}

export interface SipProxyOptions {
  /** Sends a SIP message as a text frame; false when the connection is gone. */
  send: (id: number, text: string) => boolean
  log: FastifyBaseLogger
  /** Longest registration granted, in seconds (RFC 3261 §10.3 step 7 lets a registrar shorten it). */
  maxExpires?: number
  /** Signs the connection id put in Via, so a forged response cannot be steered to another connection. */
  secret?: Buffer
  serverName?: string
  now?: () => number
}

/** The Via parameter that carries the id of the connection a relayed request came from. */
export const CID_PARAM = 'cid'
const MAGIC_COOKIE = 'z9hG4bK'
const DEFAULT_EXPIRES = 3600
const DEFAULT_MAX_FORWARDS = 70
const ALLOW = 'INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, REGISTER, INFO, UPDATE, PRACK, REFER, NOTIFY, SUBSCRIBE'

/**
 * A stateless SIP proxy and registrar for WebSocket clients (RFC 3261 §16.11, RFC 7118): it answers
 * OPTIONS and REGISTER itself and relays every other request to the connection of the user it is for.
 *
 * Each relayed request gets a Via naming the connection it came from (`;cid=<id>`), so the response finds
 * its way back by popping that Via, with no transaction state kept. The branch is derived from the
 * sender's branch (RFC 3261 §16.11), so a CANCEL or a non-2xx ACK gets the same branch as its INVITE.
 */
export class SipProxy {
  readonly registrar: Registrar
  private readonly connections = new Map<number, ConnectionLocal>()
  private readonly secret: Buffer
  private readonly maxExpires: number
  private readonly serverName: string

  constructor (private readonly options: SipProxyOptions) {
    this.registrar = new Registrar(32, options.now)
    this.secret = options.secret ?? randomBytes(32)
    this.maxExpires = options.maxExpires ?? DEFAULT_EXPIRES
    this.serverName = options.serverName ?? 'fastify-sip-ws example'
  }

  opened (id: number, local: ConnectionLocal): void {
    this.connections.set(id, local)
  }

  closed (id: number): string[] {
    this.connections.delete(id)
    const aors = this.registrar.dropConnection(id)
    if (aors.length > 0) this.options.log.info({ id, aors }, 'sip: bindings dropped with their connection')
    return aors
  }

  /** One WebSocket message. Never throws: bad input gets a 400 (requests) or is dropped (responses). */
  message (id: number, data: string | Buffer): void {
    let message: SipMessage
    try {
      message = parseSip(data)
    } catch (err) {
      this.unparsable(id, data, err)
      return
    }
    try {
      if (message.kind === 'response') this.routeResponse(id, message)
      else this.routeRequest(id, message)
    } catch (err) {
      // A bug here must cost one message, not the connection or the process.
      this.options.log.error({ err, id }, 'sip: message handling failed')
      if (message.kind === 'request' && message.method !== 'ACK') this.reply(id, message, 500, 'Server Internal Error')
    }
  }

  // ---- requests --------------------------------------------------------------------------------------

  private routeRequest (id: number, request: SipRequest): void {
    const problem = validate(request)
    if (problem !== null) {
      this.options.log.info({ id, method: request.method, problem }, 'sip: bad request')
      if (request.method !== 'ACK') this.reply(id, request, 400, 'Bad Request', [['Warning', `399 - "${problem}"`]])
      return
    }
    const ruri = parseUri(request.uri)
    if (ruri === null || (ruri.scheme !== 'sip' && ruri.scheme !== 'sips')) {
      if (request.method !== 'ACK') this.reply(id, request, 416, 'Unsupported URI Scheme')
      return
    }
    if (request.method === 'REGISTER') {
      this.register(id, request)
      return
    }
    if (ruri.user === null) {
      // Addressed to the proxy itself (no user part).
      if (request.method === 'OPTIONS') {
        this.reply(id, request, 200, 'OK', [['Allow', ALLOW], ['Accept', 'text/plain, application/sdp'], ['Supported', 'path']])
      } else if (request.method !== 'ACK') {
        this.reply(id, request, 404, 'Not Found')
      }
      return
    }
    this.relay(id, request, ruri)
  }

  private register (id: number, request: SipRequest): void {
    const to = parseNameAddr(request.get('to') ?? '')
    const aor = to === null ? null : parseUri(to.uri)
    if (aor === null || aor.user === null) {
      this.reply(id, request, 400, 'Bad Request', [['Warning', '399 - "To must name a user"']])
      return
    }
    const user = aor.user
    const expiresHeader = request.get('expires')
    let defaultExpires = DEFAULT_EXPIRES
    if (expiresHeader !== undefined) {
      const value = parseSeconds(expiresHeader)
      if (value === null) {
        this.reply(id, request, 400, 'Bad Request', [['Warning', '399 - "bad Expires"']])
        return
      }
      defaultExpires = value
    }

    const contacts = request.getAll('contact').flatMap(splitList)
    if (contacts.length === 1 && contacts[0] === '*') {
      if (defaultExpires !== 0) {
        this.reply(id, request, 400, 'Bad Request', [['Warning', '399 - "Contact: * needs Expires: 0"']])
        return
      }
      this.registrar.removeAll(user)
      this.options.log.info({ id, aor: user }, 'sip: all bindings removed')
      this.reply(id, request, 200, 'OK')
      return
    }

    const updates: Array<{ uri: string, parsed: SipUri, contact: NameAddr, expires: number }> = []
    for (const value of contacts) {
      const contact = value === '*' ? null : parseNameAddr(value)
      const parsed = contact === null ? null : parseUri(contact.uri)
      if (contact === null || parsed === null) {
        this.reply(id, request, 400, 'Bad Request', [['Warning', '399 - "bad Contact"']])
        return
      }
      const param = contact.params.get('expires')
      const expires = param === undefined ? defaultExpires : parseSeconds(param ?? '')
      if (expires === null) {
        this.reply(id, request, 400, 'Bad Request', [['Warning', '399 - "bad expires parameter"']])
        return
      }
      updates.push({ uri: contact.uri, parsed, contact, expires: Math.min(expires, this.maxExpires) })
    }
    for (const { uri, parsed, contact, expires } of updates) {
      const params = new Map(contact.params)
      params.delete('expires')
      if (!this.registrar.update(user, id, uri, parsed, params, expires)) {
        this.reply(id, request, 403, 'Forbidden', [['Warning', `399 - "at most ${this.registrar.maxPerConnection} bindings per connection"`]])
        return
      }
      this.options.log.info({ id, aor: user, contact: uri, expires }, expires === 0 ? 'sip: unregistered' : 'sip: registered')
    }
    const extra: Array<[string, string]> = this.registrar.bindings(user).map((b) => ['Contact', this.registrar.contactValue(b)])
    this.reply(id, request, 200, 'OK', extra)
  }

  /** RFC 3261 §16.4–16.6 for one target, stateless. */
  private relay (id: number, request: SipRequest, ruri: SipUri): void {
    const noAnswer = request.method === 'ACK'
    const maxForwards = request.get('max-forwards')
    let forwards = DEFAULT_MAX_FORWARDS
    if (maxForwards !== undefined) {
      forwards = Number(maxForwards)
      if (forwards === 0) {
        if (!noAnswer) this.reply(id, request, 483, 'Too Many Hops')
        return
      }
      forwards--
    }

    this.popOwnRoute(id, request)
    const binding = this.registrar.lookup(ruri.user ?? '') ?? this.registrar.lookupContact(ruri)
    const target = binding === undefined ? undefined : this.connections.get(binding.connectionId)
    if (binding === undefined || target === undefined) {
      this.options.log.debug({ id, method: request.method, user: ruri.user }, 'sip: no binding')
      if (!noAnswer) this.reply(id, request, 404, 'Not Found')
      return
    }

    // A registrar-proxy retargets to the registered contact (RFC 3261 §16.5): UAs such as JsSIP answer
    // 404 to a Request-URI that is neither their AOR's user nor their contact.
    request.uri = binding.uri
    request.set('Max-Forwards', String(forwards))
    request.prepend('Via', this.via(target, id, request))
    if (!this.options.send(binding.connectionId, request.toString())) {
      if (!noAnswer) this.reply(id, request, 480, 'Temporarily Unavailable')
      return
    }
    this.options.log.debug({ id, to: binding.connectionId, method: request.method, aor: binding.aor }, 'sip: relayed request')
  }

  /** A Route naming this proxy with `lr` (a preloaded route, RFC 3261 §16.4) is ours to remove. */
  private popOwnRoute (id: number, request: SipRequest): void {
    const top = request.get('route')
    if (top === undefined) return
    const route = parseNameAddr(splitList(top)[0] ?? '')
    const uri = route === null ? null : parseUri(route.uri)
    if (uri === null || uri.user !== null || !uri.params.has('lr')) return
    const local = this.connections.get(id)
    const names = new Set<string>()
    if (local !== undefined) {
      names.add(local.localAddress)
      if (local.host !== undefined) names.add(local.host.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1').toLowerCase())
    }
    if (names.has(uri.host.replace(/^\[(.*)\]$/, '$1').toLowerCase())) request.shift('route', splitList)
  }

  private via (target: ConnectionLocal, sourceId: number, request: SipRequest): string {
    const top = request.get('via')
    const previous = top === undefined ? null : parseVia(splitList(top)[0] ?? '')
    const branch = this.branch(sourceId, previous?.params.get('branch') ?? top ?? '')
    const transport = target.secure === true ? 'WSS' : 'WS'
    return `SIP/2.0/${transport} ${formatHost(target.localAddress)}:${target.localPort};branch=${branch};${CID_PARAM}=${sourceId}`
  }

  private branch (sourceId: number, previousBranch: string): string {
    const mac = createHmac('sha256', this.secret).update(`${sourceId}\n${previousBranch}`).digest('base64url')
    return MAGIC_COOKIE + mac.slice(0, 22)
  }

  // ---- responses -------------------------------------------------------------------------------------

  private routeResponse (id: number, response: SipResponse): void {
    const top = response.get('via')
    const via = top === undefined ? null : parseVia(splitList(top)[0] ?? '')
    const cid = via?.params.get(CID_PARAM)
    if (via === null || cid === undefined || cid === null || !/^\d{1,15}$/.test(cid)) {
      this.options.log.debug({ id, status: response.status }, 'sip: response with no Via of ours dropped')
      return
    }
    response.shift('via', splitList)
    const next = response.get('via')
    const previous = next === undefined ? null : parseVia(splitList(next)[0] ?? '')
    if (previous === null || via.params.get('branch') !== this.branch(Number(cid), previous.params.get('branch') ?? next ?? '')) {
      this.options.log.info({ id, status: response.status }, 'sip: response with a forged or damaged Via dropped')
      return
    }
    if (!this.options.send(Number(cid), response.toString())) {
      this.options.log.debug({ id, to: Number(cid), status: response.status }, 'sip: response for a closed connection dropped')
      return
    }
    this.options.log.debug({ id, to: Number(cid), status: response.status }, 'sip: relayed response')
  }

  // ---- local answers ---------------------------------------------------------------------------------

  /** A response made here (RFC 3261 §8.2.6): the request's Via, From, To, Call-ID and CSeq, and a To tag. */
  private reply (id: number, request: SipRequest, status: number, reason: string, extra: Array<[string, string]> = []): void {
    const response = new SipResponse(status, reason)
    for (const h of request.headers) {
      const key = h.name.toLowerCase()
      if (key === 'via' || key === 'v') response.headers.push({ name: 'Via', value: h.value })
    }
    for (const name of ['From', 'To', 'Call-ID', 'CSeq']) {
      let value = request.get(name)
      if (value === undefined) continue
      if (name === 'To' && status > 100 && parseNameAddr(value)?.params.has('tag') === false) {
        value += `;tag=${randomBytes(5).toString('hex')}`
      }
      response.headers.push({ name, value })
    }
    for (const [name, value] of extra) response.headers.push({ name, value })
    response.headers.push({ name: 'Server', value: this.serverName })
    response.headers.push({ name: 'Content-Length', value: '0' })
    this.options.send(id, response.toString())
  }

  private unparsable (id: number, data: string | Buffer, err: unknown): void {
    const text = typeof data === 'string' ? data : data.toString('latin1')
    // Blank messages carry nothing (a CRLF keepalive habit of stream transports); a broken response is
    // never answered (RFC 3261 §17.1.3 has the client drop it).
    if (text.trim() === '') return
    const problem = err instanceof SipParseError ? err.message : 'unparsable'
    if (/^\s*SIP\/2\.0\s/i.test(text)) {
      this.options.log.info({ id, problem }, 'sip: unparsable response dropped')
      return
    }
    this.options.log.info({ id, problem, bytes: typeof data === 'string' ? Buffer.byteLength(data) : data.length }, 'sip: unparsable message')
    const response = new SipResponse(400, 'Bad Request', [
      { name: 'Warning', value: `399 - "${problem.replace(/["\\\r\n]/g, ' ')}"` },
      { name: 'Server', value: this.serverName }
    ])
    this.options.send(id, response.toString())
  }
}

/** RFC 3261 §16.3 request validation, plus the headers §8.1.1 says every request has. */
function validate (request: SipRequest): string | null {
  for (const name of ['Via', 'From', 'To', 'Call-ID', 'CSeq']) {
    if (!request.has(name)) return `missing ${name}`
  }
  const via = parseVia(splitList(request.get('via') ?? '')[0] ?? '')
  if (via === null) return 'bad Via'
  if (parseNameAddr(request.get('from') ?? '') === null) return 'bad From'
  if (parseNameAddr(request.get('to') ?? '') === null) return 'bad To'
  const cseq = parseCSeq(request.get('cseq') ?? '')
  if (cseq === null) return 'bad CSeq'
  if (cseq.method !== request.method) return 'CSeq method does not match the request'
  const maxForwards = request.get('max-forwards')
  if (maxForwards !== undefined && !/^\d{1,3}$/.test(maxForwards)) return 'bad Max-Forwards'
  if (maxForwards !== undefined && Number(maxForwards) > 255) return 'bad Max-Forwards'
  return null
}

/** Delta-seconds (RFC 3261 §25.1), capped instead of refused when huge (RFC 3261 §20.19 says so). */
function parseSeconds (text: string): number | null {
  if (!/^\d+$/.test(text.trim())) return null
  return Math.min(Number(text.trim()), 0xffffffff)
}
