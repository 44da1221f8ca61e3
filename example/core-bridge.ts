import type { FastifyBaseLogger } from 'fastify'
import type { ClusterLocations } from './cluster-locations'
import type { CoreSource, CoreTransport } from './core-transport'
import { CoreTransactions } from './core-transactions'
import { FlowTokens } from './flow-token'
import type { ProxyVia } from './proxy-via'
import { RegisterMirror } from './register-mirror'
import type { Registrar } from './registrar'
import { hostPort, type SipAddress } from './sip-address'
import { formatHost, parseNameAddr, parseUri, parseVia, splitList, type SipUri, type Via } from './sip-header'
import { headerKey, parseSip, type SipRequest, type SipResponse } from './sip-message'
import { localResponse } from './sip-reply'
import { decrementMaxForwards, startsDialog, validate } from './sip-validate'

/** What the bridge needs to know of a WebSocket connection (see `ConnectionLocal` in sip-proxy.ts). */
export interface WsSide {
  localAddress: string
  localPort: number
  host?: string
  secure?: boolean
}

export interface CoreBridgeOptions {
  /** Where requests towards the SIP side go: the edge's only next hop there. */
  core: SipAddress
  transport: CoreTransport
  via: ProxyVia
  tokenKey: Buffer
  registrar: Registrar
  /** The open WebSocket connection `id`, or undefined once it is gone. */
  connection: (id: number) => WsSide | undefined
  /** Writes to a WebSocket connection; false when it is gone or closing. */
  sendWs: (id: number, text: string) => boolean
  log: FastifyBaseLogger
  serverName: string
  /** In a cluster: reaches flows that are connections of other nodes. */
  cluster?: ClusterLocations
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

  constructor (private readonly options: CoreBridgeOptions) {
    this.tokens = new FlowTokens(options.tokenKey)
    this.mirror = new RegisterMirror(options.registrar, options.log)
  }

  // ---- WebSocket client → core -----------------------------------------------------------------------

  /** Removes the Routes naming this edge (both of its record-routes) from a client's request. */
  popOwnRoutes (id: number, request: SipRequest): void {
    const ws = this.options.connection(id)
    for (let i = 0; i < 2; i++) {
      const uri = topRoute(request)
      if (uri === null || !(this.isCoreFacing(uri) || this.hasToken(uri) || (ws !== undefined && isWsFacing(uri, ws)))) return
      request.shift('route', splitList)
    }
  }

  /** A client's request (Max-Forwards already counted) on its way to the core. */
  toCore (id: number, request: SipRequest): void {
    const ws = this.options.connection(id)
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
    const via = parseVia(splitList(response.get('via') ?? '')[0] ?? '')
    if (via === null) {
      this.options.log.info({ status: response.status }, 'sip core: response with no Via for the core dropped')
      return
    }
    const text = response.toString()
    const key = CoreTransactions.key(response)
    if (key !== null) this.transactions.answered(key, text)
    this.options.transport.send(text, viaTarget(via))
  }

  // ---- core → edge -----------------------------------------------------------------------------------

  /** One message from the SIP side. Never throws. */
  fromCore (data: Buffer, source: CoreSource): void {
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

  private responseFromCore (response: SipResponse, source: CoreSource): void {
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

  private requestFromCore (request: SipRequest, source: CoreSource): void {
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
        const via = parseVia(splitList(request.get('via') ?? '')[0] ?? '')
        if (seen.response !== null && via !== null) this.options.transport.send(seen.response, viaTarget(via))
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
    const ws = this.options.connection(flow)
    if (ws !== undefined) {
      if (!this.options.sendWs(flow, this.toFlow(request, flow, ws))) this.flowGone(request, flow)
      else this.options.log.debug({ to: flow, method: request.method }, 'sip core: request relayed to its flow')
    } else if (this.options.cluster !== undefined) {
      // fromCore never throws; neither may what it leaves running.
      this.toRemoteFlow(this.options.cluster, request, flow).catch((err: unknown) => { this.options.log.error({ err, flow }, 'sip core: relay to a flow on another node failed') })
    } else {
      this.flowFailed(request, flow)
    }
  }

  /** The request as it goes to the client over flow `flow`, whose local side is `ws`. */
  private toFlow (request: SipRequest, flow: number, ws: WsSide): string {
    const top = topRoute(request)
    if (top !== null && isWsFacing(top, ws)) request.shift('route', splitList)
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
  private async toRemoteFlow (cluster: ClusterLocations, request: SipRequest, flow: number): Promise<void> {
    const ws = await cluster.connection(flow).catch((err: unknown) => {
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
    const delivered = await cluster.send(flow, text).catch((err: unknown) => {
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
    const { core, transport } = this.options
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
    const via = parseVia(splitList(request.get('via') ?? '')[0] ?? '')
    if (via !== null) this.options.transport.send(text, viaTarget(via))
  }

  private coreFacingHost (): string {
    const local = this.options.transport.local
    return hostPort(local) + (local.transport === 'tcp' ? ';transport=tcp' : '')
  }

  /** A route whose user part is a flow token this edge (any node of its cluster) made. */
  private hasToken (uri: SipUri): boolean {
    return uri.user !== null && this.tokens.read(uri.user) !== null
  }

  private isCoreFacing (uri: SipUri): boolean {
    const local = this.options.transport.local
    return sameHost(uri.host, local.host) && (uri.port ?? 5060) === local.port
  }
}

function wsFacingRoute (ws: WsSide): string {
  return `<sip:${formatHost(ws.localAddress)}:${ws.localPort};transport=${ws.secure === true ? 'wss' : 'ws'};lr;r2=on>`
}

function isWsFacing (uri: SipUri, ws: WsSide): boolean {
  const named = sameHost(uri.host, ws.localAddress) || (ws.host !== undefined && sameHost(uri.host, ws.host.replace(/:\d+$/, '')))
  return named && (uri.port === null || uri.port === ws.localPort) && uri.params.has('lr')
}

function sameHost (a: string, b: string): boolean {
  return a.replace(/^\[(.*)\]$/, '$1').toLowerCase() === b.replace(/^\[(.*)\]$/, '$1').toLowerCase()
}

function topRoute (request: SipRequest): SipUri | null {
  const top = request.get('route')
  if (top === undefined) return null
  const route = parseNameAddr(splitList(top)[0] ?? '')
  return route === null ? null : parseUri(route.uri)
}

/** `Supported` with `tags` added where missing. */
function withOptionTags (value: string | undefined, tags: string[]): string {
  const have = splitList(value ?? '')
  const lower = new Set(have.map((t) => t.toLowerCase()))
  return [...have, ...tags.filter((t) => !lower.has(t))].join(', ')
}

/**
 * RFC 3261 §18.2.1 `received` and RFC 3581 `rport` on the top Via of a request from the core. Over TCP
 * rport is always filled in, as Kamailio's `force_rport()`: the answer must go back on that connection.
 */
function markReceived (request: SipRequest, source: CoreSource): void {
  const top = request.get('via')
  if (top === undefined) return
  const values = splitList(top)
  const via = parseVia(values[0] ?? '')
  if (via === null) return
  let value = values[0]
  if (!sameHost(via.host, source.address)) value = setParam(value, 'received', source.address)
  if (via.params.has('rport') || source.transport === 'tcp') value = setParam(value, 'rport', String(source.port))
  values[0] = value
  // Only the first Via line changes; `set` would drop the others.
  const index = request.headers.findIndex((h) => headerKey(h.name) === 'via')
  request.headers[index] = { name: request.headers[index].name, value: values.join(', ') }
}

function setParam (via: string, name: string, value: string): string {
  const pattern = new RegExp(`;\\s*${name}(?:=[^;,]*)?`, 'i')
  return pattern.test(via) ? via.replace(pattern, `;${name}=${value}`) : `${via};${name}=${value}`
}

/** Where a response for a Via goes (RFC 3261 §18.2.2, RFC 3581 §4). */
function viaTarget (via: Via): CoreSource {
  const received = via.params.get('received')
  const rport = via.params.get('rport')
  return {
    transport: via.protocol.endsWith('/TCP') ? 'tcp' : 'udp',
    address: (received ?? via.host).replace(/^\[(.*)\]$/, '$1'),
    port: rport !== undefined && rport !== null && /^\d+$/.test(rport) ? Number(rport) : via.port ?? 5060
  }
}
