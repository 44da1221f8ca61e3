import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { ClusterLocations } from './cluster-locations'
import type { CoreBridge } from './core-bridge'
import { ProxyVia } from './proxy-via'
import type { RemoteBinding } from './redis-bindings'
import { Registrar, type Binding } from './registrar'
import { formatHost, parseNameAddr, parseUri, splitList, type NameAddr, type SipUri } from './sip-header'
import { parseSip, SipParseError, SipResponse, type SipMessage, type SipRequest } from './sip-message'
import { localResponse } from './sip-reply'
import { decrementMaxForwards, parseSeconds, validate } from './sip-validate'

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

export { CID_PARAM } from './proxy-via'
export const SERVER_NAME = 'fastify-sip-ws example'
const DEFAULT_EXPIRES = 3600
const ALLOW = 'INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, REGISTER, INFO, UPDATE, PRACK, REFER, NOTIFY, SUBSCRIBE'

/**
 * A stateless SIP proxy and registrar for WebSocket clients (RFC 3261 §16.11, RFC 7118): it answers
 * OPTIONS and REGISTER itself and relays every other request to the connection of the user it is for.
 *
 * Each relayed request gets a Via naming the connection it came from (`;cid=<id>`, see proxy-via.ts), so
 * the response finds its way back by popping that Via, with no transaction state kept.
 *
 * With a core (`attachCore`), REGISTER and every request for someone not registered here go to the core
 * through the CoreBridge, and responses for the core's requests go back to it.
 *
 * In a cluster (`attachCluster`), bindings are written through to Redis, and a request for a user not
 * registered on this node is looked up there and sent to its node's connection with a confirmed
 * `wsCluster.send`. Connection ids are cluster-wide, so the Via's `cid` leads a response back from any
 * node. Only those lookups and a REGISTER's write wait (on Redis); everything else stays synchronous.
 */
export class SipProxy {
  readonly registrar: Registrar
  readonly via: ProxyVia
  private readonly connections = new Map<number, ConnectionLocal>()
  private readonly maxExpires: number
  private readonly serverName: string
  private core: CoreBridge | undefined
  private cluster: ClusterLocations | undefined

  constructor (private readonly options: SipProxyOptions) {
    this.registrar = new Registrar(32, options.now)
    this.via = new ProxyVia(options.secret ?? randomBytes(32))
    this.maxExpires = options.maxExpires ?? DEFAULT_EXPIRES
    this.serverName = options.serverName ?? SERVER_NAME
  }

  /** Sends what is not for a client of this edge to a SIP core. */
  attachCore (core: CoreBridge): void {
    this.core = core
  }

  /** Shares the bindings with the other nodes of a cluster, and reaches theirs. */
  attachCluster (cluster: ClusterLocations): void {
    this.cluster = cluster
    this.registrar.listener = {
      saved: (binding) => { cluster.saved(binding, this.connections.get(binding.connectionId)) },
      removed: (binding) => { cluster.removed(binding) }
    }
  }

  /** Writes this node's bindings to the cluster again (Redis came back); returns how many. */
  resyncCluster (): number {
    return this.cluster?.resync(this.registrar.all(), (id) => this.connections.get(id)) ?? 0
  }

  /** The local side of an open connection. */
  connection (id: number): ConnectionLocal | undefined {
    return this.connections.get(id)
  }

  opened (id: number, local: ConnectionLocal): void {
    this.connections.set(id, local)
  }

  closed (id: number): string[] {
    this.connections.delete(id)
    const aors = this.registrar.dropConnection(id)
    if (aors.length > 0) {
      this.cluster?.closed(id)
      this.options.log.info({ id, aors }, 'sip: bindings dropped with their connection')
    }
    return aors
  }

  /**
   * One WebSocket message. Never throws or rejects: bad input gets a 400 (requests) or is dropped
   * (responses). Returns a promise only when the message waits on the cluster (a lookup in Redis, or a
   * REGISTER's write there), so the
   * plugin runs the connection's next message after it: an INVITE's CANCEL never overtakes it.
   */
  message (id: number, data: string | Buffer): void | Promise<void> {
    let message: SipMessage
    try {
      message = parseSip(data)
    } catch (err) {
      this.unparsable(id, data, err)
      return
    }
    try {
      if (message.kind === 'response') {
        this.routeResponse(id, message)
        return
      }
      const pending = this.routeRequest(id, message)
      if (pending !== undefined) return pending.catch((err: unknown) => { this.failed(id, message, err) })
    } catch (err) {
      this.failed(id, message, err)
    }
  }

  /** A bug here must cost one message, not the connection or the process. */
  private failed (id: number, message: SipMessage, err: unknown): void {
    this.options.log.error({ err, id }, 'sip: message handling failed')
    if (message.kind === 'request' && message.method !== 'ACK') this.reply(id, message, 500, 'Server Internal Error')
  }

  // ---- requests --------------------------------------------------------------------------------------

  private routeRequest (id: number, request: SipRequest): void | Promise<void> {
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
    if (request.method === 'REGISTER' && this.core === undefined) return this.register(id, request)
    if (ruri.user === null && request.method !== 'REGISTER') {
      // Addressed to the proxy itself (no user part).
      if (request.method === 'OPTIONS') {
        this.reply(id, request, 200, 'OK', [['Allow', ALLOW], ['Accept', 'text/plain, application/sdp'], ['Supported', this.core === undefined ? 'path' : 'path, outbound']])
      } else if (request.method !== 'ACK') {
        this.reply(id, request, 404, 'Not Found')
      }
      return
    }
    return this.relay(id, request, ruri)
  }

  private register (id: number, request: SipRequest): void | Promise<void> {
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
      return this.replyWritten(id, request, 200, 'OK')
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
    return this.replyWritten(id, request, 200, 'OK', extra)
  }

  /**
   * In a cluster, a REGISTER is answered once Redis has its bindings, so another node finds them as soon
   * as the UA knows it is registered. (The 200 lists the bindings made through this node.)
   */
  private replyWritten (id: number, request: SipRequest, status: number, reason: string, extra: Array<[string, string]> = []): void | Promise<void> {
    if (this.cluster === undefined) {
      this.reply(id, request, status, reason, extra)
      return
    }
    return this.cluster.written().then(() => { this.reply(id, request, status, reason, extra) })
  }

  /** RFC 3261 §16.4–16.6 for one target, stateless. */
  private relay (id: number, request: SipRequest, ruri: SipUri): void | Promise<void> {
    if (!decrementMaxForwards(request)) {
      if (request.method !== 'ACK') this.reply(id, request, 483, 'Too Many Hops')
      return
    }
    if (this.core !== undefined) {
      // A request that still has a Route after ours follows it (a dialog set up through the core).
      this.core.popOwnRoutes(id, request)
      if (request.method === 'REGISTER' || request.has('route')) {
        this.core.toCore(id, request)
        return
      }
    } else {
      this.popOwnRoute(id, request)
    }
    const binding = this.lookup(ruri)
    if (binding !== undefined) this.relayTo(id, request, binding)
    else if (this.cluster !== undefined) return this.relayRemote(this.cluster, id, request, ruri)
    else this.noBinding(id, request, ruri)
  }

  /** Nobody the request is for is registered (anywhere in the cluster): to the core, else 404. */
  private noBinding (id: number, request: SipRequest, ruri: SipUri): void {
    if (this.core !== undefined) {
      this.core.toCore(id, request)
      return
    }
    this.options.log.debug({ id, method: request.method, user: ruri.user }, 'sip: no binding')
    if (request.method !== 'ACK') this.reply(id, request, 404, 'Not Found')
  }

  /** The open binding a Request-URI names: an AOR's newest, or the one whose contact it is. */
  private lookup (ruri: SipUri): Binding | undefined {
    const binding = this.registrar.lookup(ruri.user ?? '') ?? this.registrar.lookupContact(ruri)
    return binding === undefined || !this.connections.has(binding.connectionId) ? undefined : binding
  }

  private relayTo (id: number, request: SipRequest, binding: Binding): void {
    const target = this.connections.get(binding.connectionId)
    if (target === undefined) return
    this.retarget(id, request, binding, target)
    if (!this.options.send(binding.connectionId, request.toString())) {
      this.notRelayed(id, request)
      return
    }
    this.options.log.debug({ id, to: binding.connectionId, method: request.method, aor: binding.aor }, 'sip: relayed request')
  }

  /**
   * To a binding on another node: looked up in Redis, sent with a confirmed `wsCluster.send`. The send is
   * made at once, in order with every other of this node; only its outcome is awaited, off this
   * connection's queue. False (the connection or its node is gone) gets 480 and drops the binding; no
   * answer in time gets 480. A binding whose node is known gone was purged by the lookup: 404 (or the
   * core's answer), at once.
   */
  private async relayRemote (cluster: ClusterLocations, id: number, request: SipRequest, ruri: SipUri): Promise<void> {
    let binding: RemoteBinding | null
    try {
      binding = await cluster.find(ruri)
    } catch (err) {
      this.options.log.warn({ err, id, user: ruri.user }, 'sip cluster: lookup failed')
      // A core reaches every client of the edge through their Paths, Redis or not.
      if (this.core !== undefined) this.core.toCore(id, request)
      else this.unavailable(id, request)
      return
    }
    if (binding === null) {
      this.noBinding(id, request, ruri)
      return
    }
    this.retarget(id, request, binding, binding.local ?? this.connections.get(id))
    const text = request.toString()
    if (request.method === 'ACK') {
      // Nothing answers an ACK: one publish, unconfirmed.
      this.options.send(binding.connectionId, text)
      return
    }
    const { connectionId, node } = binding
    // Rejections of the handlers themselves are caught too: nothing here may become an unhandled rejection.
    cluster.send(connectionId, text).then((delivered) => {
      if (delivered) {
        this.options.log.debug({ id, to: connectionId, node, method: request.method }, 'sip cluster: relayed request')
        return
      }
      this.notRelayed(id, request)
      // No live connection behind it: the next request for that user is not sent there again.
      cluster.forget(binding).catch((err: unknown) => { this.options.log.debug({ err, to: connectionId, node }, 'sip cluster: stale binding not removed') })
    }, (err: unknown) => {
      this.options.log.info({ err, id, to: connectionId, node }, 'sip cluster: relay not confirmed')
      this.notRelayed(id, request)
    }).catch((err: unknown) => { this.options.log.error({ err, id, to: connectionId }, 'sip cluster: relay failed') })
  }

  /**
   * A registrar-proxy retargets to the registered contact (RFC 3261 §16.5): UAs such as JsSIP answer 404
   * to a Request-URI that is neither their AOR's user nor their contact. The Via names the source
   * connection and is sent by `target`: the target connection's local side, or the source's when the
   * target's was not recorded.
   */
  private retarget (id: number, request: SipRequest, binding: { uri: string }, target: ConnectionLocal | undefined): void {
    request.uri = binding.uri
    const sentBy = target === undefined ? 'invalid' : `${formatHost(target.localAddress)}:${target.localPort}`
    request.prepend('Via', this.via.make(request, target?.secure === true ? 'WSS' : 'WS', sentBy, id))
  }

  private unavailable (id: number, request: SipRequest): void {
    if (request.method !== 'ACK') this.reply(id, request, 480, 'Temporarily Unavailable')
  }

  /** The target did not take a request we had put our Via on: the 480 goes to the sender's Via. */
  private notRelayed (id: number, request: SipRequest): void {
    request.shift('via', splitList)
    this.unavailable(id, request)
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

  // ---- responses -------------------------------------------------------------------------------------

  private routeResponse (id: number, response: SipResponse): void {
    const popped = this.via.pop(response)
    if ('problem' in popped) {
      if (popped.problem === 'not ours') this.options.log.debug({ id, status: response.status }, 'sip: response with no Via of ours dropped')
      else this.options.log.info({ id, status: response.status }, 'sip: response with a forged or damaged Via dropped')
      return
    }
    if (popped.source === 'core') {
      if (this.core !== undefined) this.core.responseToCore(response)
      return
    }
    if (!this.options.send(popped.source, response.toString())) {
      this.options.log.debug({ id, to: popped.source, status: response.status }, 'sip: response for a closed connection dropped')
      return
    }
    this.options.log.debug({ id, to: popped.source, status: response.status }, 'sip: relayed response')
  }

  // ---- local answers ---------------------------------------------------------------------------------

  private reply (id: number, request: SipRequest, status: number, reason: string, extra: Array<[string, string]> = []): void {
    this.options.send(id, localResponse(request, status, reason, this.serverName, extra).toString())
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
