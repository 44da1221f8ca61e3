import type { FastifyBaseLogger } from 'fastify'
import type { ConnectionLocal } from '../proxy/connection-local'
import { isOwnRoute, wsFacingRoute } from '../proxy/own-route'
import type { ProxyVia } from '../proxy/proxy-via'
import type { Registrar } from '../proxy/registrar'
import { hostPort, type SipAddress, type SipPeer } from '../sip/address'
import { splitList, withOptionTags } from '../sip/headers'
import { sameHost } from '../sip/host'
import { parseSip, type SipRequest, type SipResponse } from '../sip/message'
import { localResponse } from '../sip/reply'
import { parseUri, topRoute, type SipUri } from '../sip/uri'
import { decrementMaxForwards, startsDialog, validate } from '../sip/validate'
import { markReceived, topVia, viaTarget } from '../sip/via'
import { FlowTokens } from './flow-token'
import { RegisterMirror } from './register-mirror'
import { CoreTransactions } from './transactions'
import { CoreTransport } from './transport'

/** The flows (WebSocket connections) of the other nodes of a cluster (cluster/locations.ts). */
export interface RemoteFlows {
  /** The local side of a connection on any node, as recorded with its bindings; null when none is. */
  connection: (connectionId: number) => Promise<ConnectionLocal | null>
  /** A confirmed send to a connection of any node: false when it is gone. */
  send: (connectionId: number, text: string) => Promise<boolean>
}

export interface CoreBridgeOptions {
  /** Where requests towards the SIP side go: the edge's only next hop there. */
  core: SipAddress
  /** The edge's own SIP address towards the core (port 0 picks one). */
  listen: SipAddress
  via: ProxyVia
  tokenKey: Buffer
  registrar: Registrar
  /** The open WebSocket connections' local sides (the proxy writes them). */
  connections: ReadonlyMap<number, ConnectionLocal>
  /** Writes to a WebSocket connection; false when it is gone or closing. */
  sendWs: (id: number, text: string) => boolean
  log: FastifyBaseLogger
  serverName: string
  /** In a cluster: reaches flows that are connections of other nodes; null alone. */
  remote: RemoteFlows | null
}

/** RFC 3261 §18.1.1: a UDP request over 1300 bytes (the path MTU is unknown) goes over TCP instead. */
export const UDP_LIMIT = 1300

/**
 * The edge between WebSocket clients and a SIP core (RFC 7118 §5 with RFC 3327 Path and RFC 5626
 * Outbound), the way a Kamailio edge in front of a registrar does it:
 *
 * - a REGISTER goes to the core with `Path: <sip:TOKEN@edge;lr;ob>`, the token naming the connection;
 * - a request from a client goes to the core, record-routed twice (one route facing the WebSocket side,
 *   one facing the core with the token, as Kamailio's double record-route);
 * - a request from the core carries that token in its top Route and is written to that connection, or
 *   answered 430 Flow Failed when it is gone and 403 when the token is not ours;
 * - responses go back by Via, statelessly; UDP retransmissions from the core are absorbed.
 *
 * In a cluster, tokens and connection ids are cluster-wide: a request from the core whose token names a
 * connection of another node (the core sent it to a SIP address the nodes share) goes there with a
 * confirmed `wsCluster.send`, and a route with any node's token is a route of this edge.
 */
export class CoreBridge {
  private readonly tokens: FlowTokens
  private readonly transactions = new CoreTransactions()
  private readonly mirror: RegisterMirror
  private readonly transport: CoreTransport

  constructor (private readonly options: CoreBridgeOptions) {
    this.tokens = new FlowTokens(options.tokenKey)
    this.mirror = new RegisterMirror(options.registrar, options.log)
    this.transport = new CoreTransport({ listen: options.listen, log: options.log, onMessage: (data, source) => { this.fromCore(data, source) } })
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
    await this.transport.close()
  }

  // ---- WebSocket client → core -----------------------------------------------------------------------

  /** A Route URI the edge made facing the core: its own SIP address, or a flow token of any node. */
  namesEdge (uri: SipUri): boolean {
    return this.isCoreFacing(uri) || this.hasToken(uri)
  }

  /** A client's request (Max-Forwards already counted) on its way to the core. */
  toCore (id: number, request: SipRequest): void {
    const ws = this.options.connections.get(id)
    if (ws === undefined) return
    if (request.method === 'REGISTER') {
      request.prepend('Path', `<sip:${this.tokens.make(id)}@${this.coreFacingHost()};lr;ob>`)
      request.set('Supported', withOptionTags(request.get('supported'), ['path', 'outbound']))
      this.mirror.forwarded(id, request)
    } else if (startsDialog(request)) {
      request.prepend('Record-Route', wsFacingRoute(ws))
      request.prepend('Record-Route', `<sip:${this.tokens.make(id)}@${this.coreFacingHost()};lr;r2=on>`)
    }
    this.sendRequest(request, id)
  }

  /** A client's response to a request the core sent (its Via of ours already popped): back by Via. */
  responseToCore (response: SipResponse): void {
    const via = topVia(response)
    if (via === null) {
      this.options.log.info({ status: response.status }, 'sip core: response with no Via for the core dropped')
      return
    }
    const text = response.toString()
    const key = CoreTransactions.key(response)
    if (key !== null) this.transactions.answered(key, text)
    this.transport.send(text, viaTarget(via))
  }

  // ---- core → edge -----------------------------------------------------------------------------------

  /** One message from the SIP side. Never throws. */
  fromCore (data: Buffer, source: SipPeer): void {
    const text = data.toString()
    if (text.trim() === '') return
    let message
    try {
      message = parseSip(data)
    } catch (err) {
      this.options.log.info({ from: source, problem: (err as Error).message }, 'sip core: unparsable message dropped')
      return
    }
    try {
      if (message.kind === 'response') this.responseFromCore(message, source)
      else this.requestFromCore(message, source)
    } catch (err) {
      this.options.log.error({ err, from: source }, 'sip core: message handling failed')
    }
  }

  private responseFromCore (response: SipResponse, source: SipPeer): void {
    const popped = this.options.via.pop(response)
    if (!('source' in popped) || popped.source === 'core') {
      this.options.log.info({ from: source, status: response.status }, 'sip core: response not for us dropped')
      return
    }
    this.mirror.answered(popped.source, response)
    if (!this.options.sendWs(popped.source, response.toString())) {
      this.options.log.debug({ to: popped.source, status: response.status }, 'sip core: response for a closed connection dropped')
    }
  }

  private requestFromCore (request: SipRequest, source: SipPeer): void {
    markReceived(request, source)
    const problem = validate(request)
    if (problem !== null) {
      this.options.log.info({ from: source, method: request.method, problem }, 'sip core: bad request')
      this.reply(request, 400, 'Bad Request', [['Warning', `399 - "${problem}"`]])
      return
    }
    const key = source.transport === 'udp' ? CoreTransactions.key(request) : null
    if (key !== null) {
      const seen = this.transactions.begin(key)
      if (seen !== true) {
        // A retransmission: the core has not heard our answer yet.
        const via = topVia(request)
        if (seen.response !== null && via !== null) this.transport.send(seen.response, viaTarget(via))
        this.options.log.debug({ from: source, method: request.method }, 'sip core: retransmission absorbed')
        return
      }
    }
    if (!decrementMaxForwards(request)) {
      this.reply(request, 483, 'Too Many Hops')
      return
    }
    const flow = this.flowOf(request)
    if (flow === 'none') {
      const ruri = parseUri(request.uri)
      if (request.method === 'OPTIONS' && ruri?.user === null) this.reply(request, 200, 'OK', [['Supported', 'path, outbound']])
      else this.reply(request, 404, 'Not Found', [['Warning', '399 - "no flow token in the Route"']])
      return
    }
    if (flow === 'forged') {
      this.options.log.warn({ from: source, method: request.method }, 'sip core: forged flow token, nothing relayed')
      this.reply(request, 403, 'Forbidden', [['Warning', '399 - "bad flow token"']])
      return
    }
    const ws = this.options.connections.get(flow)
    if (ws !== undefined) {
      if (!this.options.sendWs(flow, this.toFlow(request, flow, ws))) this.flowGone(request, flow)
      else this.options.log.debug({ to: flow, method: request.method }, 'sip core: request relayed to its flow')
    } else if (this.options.remote !== null) {
      // fromCore never throws; neither may what it leaves running.
      this.toRemoteFlow(this.options.remote, request, flow).catch((err: unknown) => { this.options.log.error({ err, flow }, 'sip core: relay to a flow on another node failed') })
    } else {
      this.flowFailed(request, flow)
    }
  }

  /** The request as it goes to the client over flow `flow`, whose local side is `ws`. */
  private toFlow (request: SipRequest, flow: number, ws: ConnectionLocal): string {
    const top = topRoute(request)
    if (top !== null && isOwnRoute(top, ws)) request.shift('route', splitList)
    if (request.method === 'INVITE') this.reply(request, 100, 'Trying')
    if (startsDialog(request)) {
      request.prepend('Record-Route', `<sip:${this.tokens.make(flow)}@${this.coreFacingHost()};lr;r2=on>`)
      request.prepend('Record-Route', wsFacingRoute(ws))
    }
    request.prepend('Via', this.options.via.make(request, ws.secure === true ? 'WSS' : 'WS', hostPort({ host: ws.localAddress, port: ws.localPort }), 'core'))
    return request.toString()
  }

  /**
   * A flow on another node: its local side (for the Via and the WebSocket-facing Record-Route, which
   * that node must recognise as its own) was recorded in Redis with the client's bindings. 430 when
   * there is none, or when its node says the connection is gone or does not answer.
   */
  private async toRemoteFlow (remote: RemoteFlows, request: SipRequest, flow: number): Promise<void> {
    const ws = await remote.connection(flow).catch((err: unknown) => {
      this.options.log.info({ err, flow }, 'sip core: flow of another node not looked up')
      return null
    })
    if (ws === null) {
      this.flowFailed(request, flow)
      return
    }
    const text = this.toFlow(request, flow, ws)
    if (request.method === 'ACK') {
      this.options.sendWs(flow, text)
      return
    }
    const delivered = await remote.send(flow, text).catch((err: unknown) => {
      this.options.log.info({ err, flow }, 'sip core: relay to another node not confirmed')
      return false
    })
    if (!delivered) this.flowGone(request, flow)
    else this.options.log.debug({ to: flow, method: request.method }, 'sip core: request relayed to its flow on another node')
  }

  /** The request was not taken by its flow: its own Via off again, and 430. */
  private flowGone (request: SipRequest, flow: number): void {
    request.shift('via', splitList)
    this.flowFailed(request, flow)
  }

  /** RFC 5626 §5.3: the flow the token names is gone, so the core may try another binding. */
  private flowFailed (request: SipRequest, id: number): void {
    this.options.log.info({ id, method: request.method }, 'sip core: flow gone, 430 Flow Failed')
    this.reply(request, 430, 'Flow Failed')
  }

  /** The connection named by the flow token in the top Route (which is removed), or why there is none. */
  private flowOf (request: SipRequest): number | 'none' | 'forged' {
    const uri = topRoute(request)
    if (uri === null || !this.isCoreFacing(uri) || uri.user === null) return 'none'
    request.shift('route', splitList)
    return this.tokens.read(uri.user) ?? 'forged'
  }

  // ---- sending ---------------------------------------------------------------------------------------

  /**
   * Adds the edge's Via and sends to the core: over TCP when SIP_LISTEN is TCP or when the request is too
   * big for UDP. `Via: SIP/2.0/UDP` and `SIP/2.0/TCP` are as long, so the size is known before choosing.
   */
  private sendRequest (request: SipRequest, id: number): void {
    const { core } = this.options
    const transport = this.transport
    const sentBy = hostPort(transport.local)
    let proto = core.transport === 'tcp' ? 'TCP' : 'UDP'
    request.prepend('Via', this.options.via.make(request, proto, sentBy, id, ';rport'))
    let text = request.toString()
    if (proto === 'UDP' && Buffer.byteLength(text) > UDP_LIMIT) {
      proto = 'TCP'
      request.shift('via', splitList)
      request.prepend('Via', this.options.via.make(request, proto, sentBy, id, ';rport'))
      text = request.toString()
    }
    this.options.log.debug({ id, method: request.method, proto, bytes: Buffer.byteLength(text) }, 'sip core: request sent to the core')
    transport.send(text, { transport: proto === 'TCP' ? 'tcp' : 'udp', address: core.host, port: core.port })
  }

  /** A stateless answer to a request from the core, sent by its Via (RFC 3261 §18.2.2). */
  private reply (request: SipRequest, status: number, reason: string, extra: Array<[string, string]> = []): void {
    if (request.method === 'ACK') return
    const response = localResponse(request, status, reason, this.options.serverName, extra)
    const text = response.toString()
    const key = CoreTransactions.key(request)
    if (key !== null) this.transactions.answered(key, text)
    const via = topVia(request)
    if (via !== null) this.transport.send(text, viaTarget(via))
  }

  private coreFacingHost (): string {
    const local = this.transport.local
    return hostPort(local) + (local.transport === 'tcp' ? ';transport=tcp' : '')
  }

  /** A route whose user part is a flow token this edge (any node of its cluster) made. */
  private hasToken (uri: SipUri): boolean {
    return uri.user !== null && this.tokens.read(uri.user) !== null
  }

  private isCoreFacing (uri: SipUri): boolean {
    const local = this.transport.local
    return sameHost(uri.host, local.host) && (uri.port ?? 5060) === local.port
  }
}
