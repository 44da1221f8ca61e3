import type { FastifyBaseLogger } from 'fastify'
import type { ConnectionLocal } from '../proxy/connection-local'
import { LocalAnswers } from '../proxy/local-answers'
import { Recent } from '../proxy/recent'
import { factsOf, Outcomes, type MessageFacts } from '../proxy/outcome'
import { wsFacingRoute } from '../proxy/own-route'
import type { ProxyVia } from '../proxy/proxy-via'
import type { Registrar } from '../proxy/registrar'
import { toStrictNextHop } from '../proxy/route-set'
import { hostPort, type SipAddress, type SipPeer } from '../sip/address'
import { splitList, withOptionTags } from '../sip/headers'
import { isGroupAddress, sameHost } from '../sip/host'
import type { SipRequest, SipResponse } from '../sip/message'
import { parseSip } from '../sip/parse'
import { localResponse } from '../sip/reply'
import type { SipUri } from '../sip/uri'
import { checkRequest, checkResponse, startsDialog } from '../sip/validate'
import { markReceived, parseVia, topVia, viaTarget } from '../sip/via'
import { ClientTransactions, DEFAULT_TIMERS, type SipTimers } from './client-transactions'
import { FlowRelay, type RemoteFlows } from './flow-relay'
import { FlowTokens } from './flow-token'
import { RegisterMirror } from './register-mirror'
import { CoreTransactions } from './transactions'
import { CoreTransport } from './transport'

export interface CoreBridgeOptions {
  /** Where requests towards the SIP side go: the edge's only next hop there. */
  core: SipAddress
  /** The edge's own SIP address towards the core (port 0 picks one). */
  listen: SipAddress
  /** The address the core reaches the edge at, when it is not `listen`'s (SIP_ADVERTISE); null: `listen`. */
  advertise?: SipAddress | null
  via: ProxyVia
  tokenKey: Buffer
  registrar: Registrar
  /** The open WebSocket connections' local sides (the proxy writes them). */
  connections: ReadonlyMap<number, ConnectionLocal>
  /** Writes to a WebSocket connection (text, or binary when not UTF-8); false when it is gone or closing. */
  sendWs: (id: number, data: string | Buffer) => boolean
  log: FastifyBaseLogger
  serverName: string
  /** In a cluster: reaches flows that are connections of other nodes; null alone. */
  remote: RemoteFlows | null
  /** What became of each message; shared with the proxy, so the sends here count for its messages too. */
  outcomes?: Outcomes
  /** T1 and T2 of the retransmissions towards the core (tests shorten them). */
  timers?: SipTimers
}

/** RFC 3261 §18.1.1: a UDP request over 1300 bytes (the path MTU is unknown) goes over TCP instead. */
export const UDP_LIMIT = 1300

/**
 * The edge between WebSocket clients and a SIP core (RFC 7118 §5 with RFC 3327 Path and RFC 5626
 * Outbound), the way a Kamailio edge in front of a registrar does it:
 *
 * - a REGISTER goes to the core with `Path: <sip:TOKEN@edge;lr;ob>`, the token naming the connection;
 * - a request from a client goes to the core, record-routed twice (one route facing the WebSocket side,
 *   one facing the core with the token, as Kamailio's double record-route), and over UDP the edge
 *   retransmits it and answers 408 for a core that stays silent (client-transactions.ts);
 * - a request from the core carries that token in a Route (flow-relay.ts);
 * - responses go back by Via; UDP retransmissions from the core are absorbed, 100 Trying is not
 *   forwarded (RFC 3261 §16.7 step 3: it is hop by hop).
 */
export class CoreBridge {
  private readonly tokens: FlowTokens
  private readonly transactions = new CoreTransactions()
  private readonly clients: ClientTransactions
  private readonly mirror: RegisterMirror
  private readonly transport: CoreTransport
  private readonly outcomes: Outcomes
  private readonly flows: FlowRelay
  /** INVITEs from the core the edge answered with a final error: their ACKs stop here. */
  private readonly answers = new LocalAnswers()
  /** How each INVITE went to the core, by the branch of the edge's Via: its CANCEL and ACK go the same way. */
  private readonly inviteTransports = new Recent<string>(64 * 500)
  /** Writes to a WebSocket connection; a write counts as the outcome of the message being handled. */
  private readonly sendWs: (id: number, data: string | Buffer) => boolean

  constructor (private readonly options: CoreBridgeOptions) {
    const outcomes = this.outcomes = options.outcomes ?? new Outcomes(options.log)
    this.tokens = new FlowTokens(options.tokenKey)
    this.mirror = new RegisterMirror(options.registrar, options.log)
    this.transport = new CoreTransport({ listen: options.listen, log: options.log, onMessage: (data, source) => { this.fromCore(data, source) } })
    this.clients = new ClientTransactions((bytes, target) => { this.transport.send(bytes, target) }, options.timers ?? DEFAULT_TIMERS)
    const sendWs = this.sendWs = (id: number, data: string | Buffer): boolean => {
      const sent = options.sendWs(id, data)
      if (sent) outcomes.sent()
      return sent
    }
    this.flows = new FlowRelay({
      ...options,
      sendWs,
      tokens: this.tokens,
      outcomes,
      coreFacingHost: () => this.coreFacingHost(),
      isCoreFacing: (uri) => this.isCoreFacing(uri),
      reply: (request, status, reason, why, extra) => { this.reply(request, status, reason, why, extra) }
    })
  }

  /** Where requests towards the SIP side go. */
  get core (): SipAddress {
    return this.options.core
  }

  /** The edge's SIP address towards the core, with the port the system picked when it was 0. */
  get local (): SipAddress {
    return this.transport.local
  }

  /** Binds the edge's UDP socket and TCP listener towards the core. */
  async start (): Promise<void> {
    await this.transport.start()
  }

  async close (): Promise<void> {
    this.clients.close()
    await this.transport.close()
  }

  // ---- WebSocket client → core -----------------------------------------------------------------------

  /** A Route URI the edge made facing the core: its own SIP address, or a flow token of any node. */
  namesEdge (uri: SipUri): boolean {
    return this.isCoreFacing(uri) || this.flows.hasToken(uri)
  }

  /**
   * A client's request (Max-Forwards already counted, the edge's own Routes gone) on its way to the
   * core. `timedOut` gets it back, the edge's Via off again, when the core never answers.
   */
  toCore (id: number, request: SipRequest, timedOut: (request: SipRequest) => void): void {
    const ws = this.options.connections.get(id)
    if (ws === undefined) {
      this.outcomes.dropped('its connection closed before it was sent', factsOf(request, 'from-ws', { id }))
      return
    }
    if (request.method === 'REGISTER') {
      request.prepend('Path', `<sip:${this.tokens.make(id)}@${this.coreFacingHost()};lr;ob>`)
      request.set('Supported', withOptionTags(request.get('supported'), ['path', 'outbound']))
      this.mirror.forwarded(id, request)
    } else if (startsDialog(request)) {
      request.prepend('Record-Route', wsFacingRoute(ws))
      request.prepend('Record-Route', `<sip:${this.tokens.make(id)}@${this.coreFacingHost()};lr;r2=on>`)
    }
    toStrictNextHop(request)
    this.sendRequest(request, id, timedOut)
  }

  /** A client's response to a request the core sent (its Via of ours already popped): back by Via. */
  responseToCore (response: SipResponse): void {
    const facts = factsOf(response, 'from-ws')
    const via = topVia(response)
    if (via === null) {
      this.outcomes.dropped('no Via for the core under the edge\'s', facts)
      return
    }
    if (response.status === 100) {
      // The edge sent the core its own 100 Trying already (flow-relay.ts).
      this.outcomes.absorbed('100 Trying', facts)
      return
    }
    const target = viaTarget(via)
    if (isGroupAddress(target.address)) {
      this.outcomes.dropped(`its next Via names a group address (${target.address})`, facts, 'warn')
      return
    }
    const bytes = response.toBuffer()
    const key = CoreTransactions.key(response)
    if (key !== null) this.transactions.answered(key, bytes)
    this.send(bytes, target)
  }

  // ---- core → edge -----------------------------------------------------------------------------------

  /** One message from the SIP side. Never throws. */
  fromCore (data: Buffer, source: SipPeer): void {
    void this.outcomes.handle(() => ({ direction: 'from-core', from: source, first: data.subarray(0, 120).toString('latin1').split(/\r?\n/, 1)[0] }), () => this.receive(data, source))
  }

  private receive (data: Buffer, source: SipPeer): void | Promise<void> {
    if (data.toString('latin1').trim() === '') {
      this.outcomes.absorbed('blank datagram (a keepalive)', { direction: 'from-core', from: source })
      return
    }
    let message
    try {
      message = parseSip(data)
    } catch (err) {
      this.outcomes.dropped(`unparsable: ${(err as Error).message}`, { direction: 'from-core', from: source, callId: (err as { head?: SipRequest | null }).head?.get('call-id') ?? null }, 'warn')
      return
    }
    try {
      if (message.kind === 'response') {
        this.responseFromCore(message, source)
        return
      }
      const pending = this.requestFromCore(message, source)
      if (pending !== undefined) return pending.catch((err: unknown) => { this.failed(factsOf(message, 'from-core', { from: source }), err) })
    } catch (err) {
      this.failed(factsOf(message, 'from-core', { from: source }), err)
    }
  }

  private failed (facts: MessageFacts, err: unknown): void {
    this.options.log.error({ err, ...facts }, 'sip core: message handling failed')
    this.outcomes.dropped('handling failed', facts, 'warn')
  }

  private requestFromCore (request: SipRequest, source: SipPeer): void | Promise<void> {
    markReceived(request, source)
    const facts = factsOf(request, 'from-core', { from: source })
    const refusal = checkRequest(request)
    if (refusal !== null) {
      // The core is trusted to send SIP: what comes from it broken is not answered, only logged.
      this.outcomes.dropped(`invalid: ${refusal.problem}`, facts, 'warn')
      return
    }
    if (this.retransmission(request, source, facts)) return
    if (request.method === 'ACK' && this.answers.has(LocalAnswers.key('core', request))) {
      this.outcomes.absorbed('ACK for an answer of the edge\'s own', facts)
      return
    }
    return this.flows.request(request, facts)
  }

  /**
   * Whether a request from the core is a UDP retransmission of one already taken: it gets the last answer
   * sent for it again, or nothing while there is none (RFC 3261 §17.2.1, §17.2.2).
   */
  private retransmission (request: SipRequest, source: SipPeer, facts: MessageFacts): boolean {
    const key = source.transport === 'udp' ? CoreTransactions.key(request) : null
    if (key === null) return false
    const seen = this.transactions.begin(key)
    if (seen === true) return false
    const via = topVia(request)
    if (seen.response !== null && via !== null) this.send(seen.response, viaTarget(via))
    this.outcomes.absorbed('retransmission', facts)
    return true
  }

  private responseFromCore (response: SipResponse, source: SipPeer): void {
    const facts = factsOf(response, 'from-core', { from: source })
    const problem = checkResponse(response)
    if (problem !== null) {
      this.outcomes.dropped(problem, facts, 'warn')
      return
    }
    const branch = topVia(response)?.params.get('branch') ?? ''
    const popped = this.options.via.pop(response)
    if (!('source' in popped) || popped.source === 'core') {
      this.outcomes.dropped('not a response to a request of the edge\'s', facts, 'warn')
      return
    }
    const method = response.get('cseq')?.trim().split(/\s+/)[1] ?? ''
    this.clients.responded(branch, method, response.status)
    if (response.status === 100) {
      this.outcomes.absorbed('100 Trying', facts)
      return
    }
    this.mirror.answered(popped.source, response)
    if (!this.sendWs(popped.source, response.payload())) {
      this.outcomes.dropped('the connection it is for is gone', { ...facts, to: popped.source })
      return
    }
    this.options.log.debug({ ...facts, to: popped.source, server: response.get('server') }, 'sip core: response relayed to its flow')
  }

  // ---- sending ---------------------------------------------------------------------------------------

  /**
   * Adds the edge's Via and sends to the core: over TCP when SIP_LISTEN is TCP or when the request is too
   * big for UDP (RFC 3261 §18.1.1), and a CANCEL or an ACK for a non-2xx the way its INVITE went (§9.1,
   * §17.1.1.3: same branch, same transport). `Via: SIP/2.0/UDP` and `SIP/2.0/TCP` are as long, so the
   * size is known before choosing.
   */
  private sendRequest (request: SipRequest, id: number, timedOut: (request: SipRequest) => void): void {
    const { core } = this.options
    const sentBy = hostPort(this.advertised)
    const via = (proto: string): string => this.options.via.make(request, proto, sentBy, id, ';rport')
    const branch = parseVia(via('UDP'))?.params.get('branch') ?? ''
    const pinned = request.method === 'CANCEL' || request.method === 'ACK' ? this.inviteTransports.get(branch) : undefined
    let proto = pinned ?? (core.transport === 'tcp' ? 'TCP' : 'UDP')
    request.prepend('Via', via(proto))
    let bytes = request.toBuffer()
    if (pinned === undefined && proto === 'UDP' && bytes.length > UDP_LIMIT) {
      proto = 'TCP'
      request.shift('via', splitList)
      request.prepend('Via', via(proto))
      bytes = request.toBuffer()
    }
    if (request.method === 'INVITE') this.inviteTransports.set(branch, proto)
    const target: SipPeer = { transport: proto === 'TCP' ? 'tcp' : 'udp', address: core.host, port: core.port }
    const tracked = this.clients.start(branch, request.method, bytes, target, () => {
      request.shift('via', splitList)
      timedOut(request)
    })
    if (!tracked) this.options.log.warn({ id, method: request.method }, 'sip core: too many requests pending at the core, this one is not retransmitted')
    this.options.log.debug({ id, method: request.method, proto, bytes: bytes.length }, 'sip core: request sent to the core')
    this.send(bytes, target)
  }

  private send (bytes: Buffer, target: SipPeer): void {
    this.transport.send(bytes, target)
    this.outcomes.sent()
  }

  /**
   * A stateless answer to a request from the core, sent by its Via (RFC 3261 §18.2.2). A final error is
   * logged with `why`; an ACK is never answered (it is dropped, with `why`).
   */
  private reply (request: SipRequest, status: number, reason: string, why: string, extra: Array<[string, string]> = []): void {
    const facts = factsOf(request, 'from-core')
    if (request.method === 'ACK') {
      this.outcomes.dropped(why, facts)
      return
    }
    if (status >= 300) {
      this.outcomes.refused(status, why, facts)
      if (request.method === 'INVITE') this.answers.answered(LocalAnswers.key('core', request))
    }
    const bytes = localResponse(request, status, reason, this.options.serverName, extra, why).toBuffer()
    const key = CoreTransactions.key(request)
    if (key !== null) this.transactions.answered(key, bytes)
    const via = topVia(request)
    if (via !== null) this.send(bytes, viaTarget(via))
  }

  /** Where the core reaches the edge: SIP_ADVERTISE, else the address bound. */
  private get advertised (): SipAddress {
    return this.options.advertise ?? this.transport.local
  }

  private coreFacingHost (): string {
    return hostPort(this.advertised) + (this.advertised.transport === 'tcp' ? ';transport=tcp' : '')
  }

  /** A URI naming the edge facing the core: the address it advertises, or the one it is bound to. */
  private isCoreFacing (uri: SipUri): boolean {
    return [this.advertised, this.transport.local].some((address) => sameHost(uri.host, address.host) && (uri.port ?? 5060) === address.port)
  }
}
