import type { FastifyBaseLogger } from 'fastify'
import { sameHost } from '../sip/host'
import { SipResponse, type SipMessage, type SipRequest } from '../sip/message'
import { parseSip, SipParseError } from '../sip/parse'
import { localResponse, warning } from '../sip/reply'
import { parseUri, type SipUri } from '../sip/uri'
import { checkRequest, checkResponse, type Refusal } from '../sip/validate'
import type { ConnectionLocal } from './connection-local'
import { LocalAnswers } from './local-answers'
import { factsOf, Outcomes } from './outcome'
import { isOwnRoute } from './own-route'
import type { ProxyVia } from './proxy-via'
import { DEFAULT_EXPIRES, register } from './register'
import type { Registrar } from './registrar'
import type { Parking } from './parking'
import { PendingAnswers } from './pending-answers'
import { Relay, type CoreSide, type Locations } from './relay'
import { takeOwnRoutes } from './route-set'

export interface SipProxyOptions {
  /** Sends a SIP message to a connection (text, or binary when not UTF-8); false when it is gone. */
  send: (id: number, data: string | Buffer) => boolean
  log: FastifyBaseLogger
  registrar: Registrar
  /** Signs the connection id put in Via, so a forged response cannot be steered to another connection. */
  via: ProxyVia
  /** The open connections' local sides: the proxy is their only writer (`opened`, `closed`). */
  connections: Map<number, ConnectionLocal>
  /** Where what is not for a client of this edge goes; null: nowhere (404). */
  core: CoreSide | null
  /** The other nodes' bindings, in a cluster; null alone. */
  locations: Locations | null
  /** What became of each message; shared with the core's side, whose sends count for it too. */
  outcomes?: Outcomes
  /** Where requests for users moving between nodes wait, in a cluster. */
  parking?: Parking | null
  /** Longest registration granted, in seconds (RFC 3261 §10.3 step 7 lets a registrar shorten it). */
  maxExpires?: number
  serverName?: string
}

export const SERVER_NAME = 'fastify-sip-ws example'
/** How long a response for another node's connection is held while Redis is away (ms). */
export const RESPONSE_HOLD_MS = 5000
const ALLOW = 'INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, REGISTER, INFO, UPDATE, PRACK, REFER, NOTIFY, SUBSCRIBE'
/** Methods the edge knows (it relays them) but does not take as the target itself: 405, not 501. */
const KNOWN = new Set([...ALLOW.split(', '), 'PUBLISH'])

/**
 * A SIP proxy and registrar for WebSocket clients (RFC 3261 §16, RFC 7118): it answers OPTIONS and
 * REGISTER for itself and relays every other request to the connection of the user it is for.
 *
 * A request is checked (validate.ts: 400, 416, 420), its Route set processed (route-set.ts, RFC 3261
 * §16.4: strict-router fix-up, the edge's own routes removed), and only then is it known whether it is
 * for the edge itself: a Request-URI with no user part naming the edge (or, with no core, the domain).
 * Anything else is routed: by its remaining Route (to the core), or by its Request-URI to a binding, the
 * cluster or the core.
 *
 * Each relayed request gets a Via naming the connection it came from (`;cid=<id>`, see proxy-via.ts), so
 * the response finds its way back by popping that Via, with no transaction state kept.
 *
 * In a cluster, bindings are written through to Redis, and a request for a user not registered on this
 * node is looked up there. Only those look-ups and a REGISTER's write wait; everything else is synchronous.
 */
export class SipProxy {
  private readonly relay: Relay
  /** Whether each connection may still be owed an answer: a drain waits for it. */
  private readonly pending = new PendingAnswers()
  private readonly maxExpires: number
  private readonly serverName: string
  private readonly outcomes: Outcomes
  private readonly localAnswers = new LocalAnswers()
  /** Every send of the proxy: it is an outcome of the message handled, and tells `pending` something went to a connection of this node. */
  private readonly send: (id: number, data: string | Buffer) => boolean

  constructor (private readonly options: SipProxyOptions) {
    this.maxExpires = options.maxExpires ?? DEFAULT_EXPIRES
    this.serverName = options.serverName ?? SERVER_NAME
    const outcomes = this.outcomes = options.outcomes ?? new Outcomes(options.log)
    this.send = (id, data) => {
      if (!options.send(id, data)) return false
      outcomes.sent()
      if (options.connections.has(id)) this.pending.sent(id)
      return true
    }
    this.relay = new Relay({ ...options, send: this.send, outcomes, reply: (id, request, status, reason, why, extra) => { this.reply(id, request, status, reason, why, extra) } })
  }

  opened (id: number, local: ConnectionLocal): void {
    this.options.connections.set(id, local)
  }

  closed (id: number): string[] {
    this.options.connections.delete(id)
    this.pending.closed(id)
    const aors = this.options.registrar.dropConnection(id)
    // Also when its bindings moved out before (a drain): the cluster forgets the connection either way.
    this.options.locations?.closed(id)
    if (aors.length > 0) this.options.log.info({ id, aors }, 'sip: bindings dropped with their connection')
    return aors
  }

  /**
   * The connection is about to be closed because this node drains: its bindings go now, and in a cluster
   * they are marked moving, so requests for their users wait for them to register on another node.
   */
  moveOut (id: number): string[] {
    this.options.locations?.moving(id)
    const aors = this.options.registrar.dropConnection(id)
    if (aors.length > 0) this.options.log.info({ id, aors }, 'sip: bindings moving out with their connection (drain)')
    return aors
  }

  /**
   * Whether a request of this connection may still be answered: it is waiting for a moving user, or
   * nothing went to the connection since it came (`lastFrameAt`, ms: the plugin's `lastUsed`), so its
   * answer, from this node or another, is on its way. A drain does not close a connection meanwhile.
   */
  awaitsAnswer (id: number, lastFrameAt: number): boolean {
    const { parking } = this.options
    return (parking?.holds(id) ?? false) || this.pending.awaits(id, lastFrameAt, parking?.releasedAt(id))
  }

  /** Whether the last frame over the connection (at `lastFrameAt`) went to it: an answer, say. */
  lastWentTo (id: number, lastFrameAt: number): boolean {
    return this.pending.lastWentTo(id, lastFrameAt)
  }

  /**
   * One WebSocket message, text or binary (RFC 7118 §5.1 allows both). Never throws or rejects: a bad
   * request gets its 400, a bad response is dropped with a log line. Returns a promise only when the
   * message waits on the cluster, so the plugin runs the connection's next message after it: an INVITE's
   * CANCEL never overtakes it.
   */
  message (id: number, data: string | Buffer): void | Promise<void> {
    return this.outcomes.handle(() => ({ direction: 'from-ws', id, first: firstLine(data) }), () => this.receive(id, data))
  }

  private receive (id: number, data: string | Buffer): void | Promise<void> {
    let message: SipMessage
    try {
      message = parseSip(data)
    } catch (err) {
      this.unparsable(id, data, err)
      return
    }
    try {
      this.pending.heard(id, message.kind === 'request' && message.method !== 'ACK')
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
    this.options.log.error({ err, ...factsOf(message, 'from-ws', { id }) }, 'sip: message handling failed')
    if (message.kind === 'request') this.reply(id, message, 500, 'Server Internal Error', 'handling failed')
    else this.outcomes.dropped('handling failed', factsOf(message, 'from-ws', { id }), 'warn')
  }

  private routeRequest (id: number, request: SipRequest): void | Promise<void> {
    const refusal = checkRequest(request)
    if (refusal !== null) return this.refuse(id, request, refusal)
    if (request.method === 'ACK' && this.localAnswers.has(LocalAnswers.key(String(id), request))) {
      this.outcomes.absorbed('ACK for an answer of the edge\'s own', factsOf(request, 'from-ws', { id }))
      return
    }
    const local = this.options.connections.get(id)
    const { core } = this.options
    takeOwnRoutes(request, (uri) => isOwnRoute(uri, local) || core?.namesEdge(uri) === true)
    const ruri = parseUri(request.uri)
    if (ruri === null || (ruri.scheme !== 'sip' && ruri.scheme !== 'sips')) {
      this.reply(id, request, 400, 'Bad Request', 'bad Request-URI in the last Route')
      return
    }
    if (request.has('route') && core === null) {
      this.reply(id, request, 404, 'Not Found', 'a Route to elsewhere, and no core to send it to')
      return
    }
    if (!request.has('route') && this.isForEdge(ruri, request, local)) return this.answerAsEdge(id, request)
    return this.relay.relay(id, request, ruri)
  }

  /**
   * After Route processing, whether the edge itself is the target (RFC 3261 §16.4). With no core: a
   * REGISTER (the edge is the registrar), or a Request-URI with no user part that is no client's contact
   * (it names the domain the edge serves). With a core, which is the registrar and serves the domain: a
   * Request-URI with no user part naming the edge's own address and port, either side.
   */
  private isForEdge (ruri: SipUri, request: SipRequest, local: ConnectionLocal | undefined): boolean {
    const { core } = this.options
    if (request.method === 'REGISTER') return core === null
    if (ruri.user !== null) return false
    if (core === null) return this.options.registrar.lookupContact(ruri) === undefined
    if (core.namesEdge(ruri)) return true
    if (local === undefined || ruri.port !== local.localPort) return false
    const hostHeader = local.host?.replace(/:\d+$/, '')
    return sameHost(ruri.host, local.localAddress) || (hostHeader !== undefined && sameHost(ruri.host, hostHeader))
  }

  /** The edge as the UAS (RFC 3261 §8.2): REGISTER, OPTIONS; 405 for another method it knows, 501 else. */
  private answerAsEdge (id: number, request: SipRequest): void | Promise<void> {
    const { core } = this.options
    if (request.method === 'REGISTER') return this.register(id, request)
    if (request.method === 'OPTIONS') {
      this.reply(id, request, 200, 'OK', '', [['Allow', ALLOW], ['Accept', 'text/plain, application/sdp'], ['Supported', core === null ? 'path' : 'path, outbound']])
    } else if (request.method === 'CANCEL') {
      this.reply(id, request, 481, 'Call/Transaction Does Not Exist', 'CANCEL for the edge itself')
    } else if (KNOWN.has(request.method)) {
      this.reply(id, request, 405, 'Method Not Allowed', `${request.method} for the edge itself`, [['Allow', core === null ? 'OPTIONS, REGISTER' : 'OPTIONS']])
    } else {
      this.reply(id, request, 501, 'Not Implemented', `unknown method ${request.method} for the edge itself`)
    }
  }

  /**
   * In a cluster, a REGISTER is answered once Redis has its bindings, so another node finds them as soon
   * as the UA knows it is registered. (The 200 lists the bindings made through this node.)
   */
  private register (id: number, request: SipRequest): void | Promise<void> {
    const { status, reason, extra, written } = register(this.options.registrar, this.options.log, this.maxExpires, id, request)
    const why = extra.find(([name]) => name === 'Warning')?.[1] ?? ''
    const { locations } = this.options
    if (!written || locations === null) {
      this.reply(id, request, status, reason, why, extra)
      return
    }
    return locations.written().then(() => { this.reply(id, request, status, reason, why, extra) })
  }

  private routeResponse (id: number, response: SipResponse): void {
    const facts = factsOf(response, 'from-ws', { id })
    const problem = checkResponse(response)
    if (problem !== null) {
      this.outcomes.dropped(problem, facts)
      return
    }
    const popped = this.options.via.pop(response)
    if ('problem' in popped) {
      this.outcomes.dropped(popped.problem === 'not ours' ? 'no Via of the edge\'s on top' : 'forged or damaged Via', facts, popped.problem === 'not ours' ? 'info' : 'warn')
      return
    }
    if (popped.source === 'core') {
      this.options.core?.responseToCore(response)
      return
    }
    const payload = response.payload()
    const to = popped.source
    if (this.send(to, payload)) {
      this.options.log.debug({ ...facts, to }, 'sip: relayed response')
      return
    }
    if (this.options.connections.has(to) || !this.holdResponse(to, response, payload)) this.outcomes.dropped('the connection it is for is gone', { ...facts, to }, 'warn')
  }

  /**
   * A response for a connection of another node, while Redis (its way there) is away: held and sent again
   * until it goes, for RESPONSE_HOLD_MS, so its caller is answered late rather than never (a client waits
   * 32 s for a final response).
   */
  private holdResponse (to: number, response: SipResponse, payload: string | Buffer): boolean {
    const { parking } = this.options
    const facts = factsOf(response, 'from-ws', { to })
    const held = parking != null && parking.hold({
      source: to,
      message: response,
      aor: '',
      until: Date.now() + RESPONSE_HOLD_MS,
      retry: async () => this.send(to, payload),
      expire: () => { this.outcomes.dropped('its connection on another node was not reached before the hold ended', facts, 'warn') }
    })
    if (held) this.outcomes.waiting('response held until Redis is back', facts, 'info')
    return held
  }

  private refuse (id: number, request: SipRequest, refusal: Refusal): void {
    this.reply(id, request, refusal.status, refusal.reason, refusal.problem, refusal.extra)
  }

  /**
   * The edge's own answer (never to an ACK: that one is dropped, with the reason). A final error is
   * logged with `why`; for an INVITE, its ACK is then expected here.
   */
  private reply (id: number, request: SipRequest, status: number, reason: string, why: string, extra: Array<[string, string]> = []): void {
    const facts = factsOf(request, 'from-ws', { id })
    if (request.method === 'ACK') {
      this.outcomes.dropped(why === '' ? `an ACK cannot be answered ${status}` : why, facts)
      return
    }
    if (status >= 300) {
      this.outcomes.refused(status, why, facts)
      if (request.method === 'INVITE') this.localAnswers.answered(LocalAnswers.key(String(id), request))
    }
    if (!this.send(id, localResponse(request, status, reason, this.serverName, extra, why).payload())) {
      this.options.log.warn({ ...facts, answer: status }, 'sip: answer not delivered: its connection is closed')
    }
  }

  /**
   * What could not be read: a request whose start line was read gets 400 (505 for another SIP version)
   * with what it had of Via, From, To, Call-ID and CSeq, so its sender can match it; a response is
   * dropped (RFC 3261 §17.1.3); text that is not SIP gets a bare 400; a blank message is a keepalive.
   */
  private unparsable (id: number, data: string | Buffer, err: unknown): void {
    const problem = err instanceof SipParseError ? err.message : 'unparsable'
    const head = err instanceof SipParseError ? err.head : null
    if (head?.kind === 'request') {
      this.reply(id, head, err instanceof SipParseError ? err.status : 400, err instanceof SipParseError && err.status === 505 ? 'Version Not Supported' : 'Bad Request', problem)
      return
    }
    const text = typeof data === 'string' ? data : data.toString('latin1')
    const facts = { direction: 'from-ws' as const, id, bytes: typeof data === 'string' ? Buffer.byteLength(data) : data.length }
    if (text.trim() === '') {
      this.outcomes.absorbed('blank message', facts)
    } else if (head !== null || /^\s*SIP\/\d/i.test(text)) {
      this.outcomes.dropped(`unparsable response: ${problem}`, { ...facts, status: head?.kind === 'response' ? head.status : undefined })
    } else {
      this.outcomes.refused(400, `unparsable: ${problem}`, facts)
      this.send(id, new SipResponse(400, 'Bad Request', [{ name: 'Warning', value: warning(problem) }, { name: 'Server', value: this.serverName }]).payload())
    }
  }
}

function firstLine (data: string | Buffer): string {
  return (typeof data === 'string' ? data : data.toString('latin1')).trimStart().split(/\r?\n/, 1)[0].slice(0, 120)
}
