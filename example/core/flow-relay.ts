import type { FastifyBaseLogger } from 'fastify'
import type { ConnectionLocal } from '../proxy/connection-local'
import type { MessageFacts, Outcomes } from '../proxy/outcome'
import { isOwnRoute, wsFacingRoute } from '../proxy/own-route'
import type { ProxyVia } from '../proxy/proxy-via'
import { takeOwnRoutes } from '../proxy/route-set'
import { hostPort } from '../sip/address'
import { splitList } from '../sip/headers'
import type { SipRequest } from '../sip/message'
import { parseUri, type SipUri } from '../sip/uri'
import { decrementMaxForwards, startsDialog } from '../sip/validate'
import type { FlowTokens } from './flow-token'

/** The flows (WebSocket connections) of the other nodes of a cluster (cluster/locations.ts). */
export interface RemoteFlows {
  /** The local side of a connection on any node, as recorded with its bindings; null when none is. */
  connection: (connectionId: number) => Promise<ConnectionLocal | null>
  /** A confirmed send to a connection of any node: false when it is gone. */
  send: (connectionId: number, data: string | Buffer) => Promise<boolean>
}

export interface FlowRelayOptions {
  via: ProxyVia
  tokens: FlowTokens
  /** The open WebSocket connections' local sides (the proxy writes them). */
  connections: ReadonlyMap<number, ConnectionLocal>
  /** In a cluster: reaches flows that are connections of other nodes; null alone. */
  remote: RemoteFlows | null
  log: FastifyBaseLogger
  outcomes: Outcomes
  /** Writes to a WebSocket connection; false when it is gone. */
  sendWs: (id: number, data: string | Buffer) => boolean
  /** `host:port` of the edge facing the core, with `;transport=tcp` over TCP. */
  coreFacingHost: () => string
  /** Whether a URI names the edge's SIP address facing the core. */
  isCoreFacing: (uri: SipUri) => boolean
  /** The edge's own answer to the core (by Via); `why` is logged with a final error. */
  reply: (request: SipRequest, status: number, reason: string, why: string, extra?: Array<[string, string]>) => void
}

/**
 * Requests from the core for the edge's WebSocket clients. The core reaches a client through the Path
 * the client registered with, or the Record-Route of its dialog: the edge's Route carries a flow token
 * (RFC 5626 §5.2) naming the connection. The edge's own Routes are taken off first (RFC 3261 §16.4,
 * strict routers included), and only then is it known whether the request is for a flow or for the edge
 * itself: an OPTIONS keepalive to the edge's address gets 200; another request with no token, 404.
 *
 * A token the edge did not make gets 403; a flow that is gone, 430 Flow Failed (RFC 5626 §5.3), so the
 * core may try another binding. In a cluster, a token naming another node's connection goes there with
 * a confirmed `wsCluster.send`.
 */
export class FlowRelay {
  constructor (private readonly options: FlowRelayOptions) {}

  /** A route whose user part is a flow token this edge (any node of its cluster) made. */
  hasToken (uri: SipUri): boolean {
    return uri.user !== null && this.options.tokens.read(uri.user) !== null
  }

  /** A valid request from the core, not a retransmission. */
  request (request: SipRequest, facts: MessageFacts): void | Promise<void> {
    const { reply } = this.options
    if (!decrementMaxForwards(request)) {
      reply(request, 483, 'Too Many Hops', 'Max-Forwards is 0')
      return
    }
    const flow = this.flowOf(request)
    if (flow === 'none') {
      const ruri = parseUri(request.uri)
      if (request.method === 'OPTIONS' && ruri !== null && ruri.user === null && this.options.isCoreFacing(ruri) && !request.has('route')) reply(request, 200, 'OK', '', [['Supported', 'path, outbound']])
      else reply(request, 404, 'Not Found', 'no flow token in the Route')
      return
    }
    if (flow === 'forged') {
      reply(request, 403, 'Forbidden', 'bad flow token')
      return
    }
    const ws = this.options.connections.get(flow)
    if (ws !== undefined) {
      if (!this.options.sendWs(flow, this.toFlow(request, flow, ws))) this.flowGone(request, flow)
      else this.options.log.debug({ ...facts, to: flow }, 'sip core: request relayed to its flow')
    } else if (this.options.remote !== null) {
      return this.toRemoteFlow(this.options.remote, request, flow, facts)
    } else {
      this.flowFailed(request, flow)
    }
  }

  /**
   * The edge's own Routes taken off (route-set.ts): its SIP address facing the core, or a flow token of
   * any node. The connection a token among them names, or why there is none.
   */
  private flowOf (request: SipRequest): number | 'none' | 'forged' {
    const taken = takeOwnRoutes(request, (uri) => this.options.isCoreFacing(uri) || this.hasToken(uri))
    const withUser = taken.find((uri) => uri.user !== null)
    if (withUser === undefined || withUser.user === null) return 'none'
    return this.options.tokens.read(withUser.user) ?? 'forged'
  }

  /** The request as it goes to the client over flow `flow`, whose local side is `ws`: 100 Trying to the core for an INVITE. */
  private toFlow (request: SipRequest, flow: number, ws: ConnectionLocal): string | Buffer {
    takeOwnRoutes(request, (uri) => isOwnRoute(uri, ws))
    if (request.method === 'INVITE') this.options.reply(request, 100, 'Trying', '')
    if (startsDialog(request)) {
      request.prepend('Record-Route', `<sip:${this.options.tokens.make(flow)}@${this.options.coreFacingHost()};lr;r2=on>`)
      request.prepend('Record-Route', wsFacingRoute(ws))
    }
    request.prepend('Via', this.options.via.make(request, ws.secure === true ? 'WSS' : 'WS', hostPort({ host: ws.localAddress, port: ws.localPort }), 'core'))
    return request.payload()
  }

  /**
   * A flow on another node: its local side (for the Via and the WebSocket-facing Record-Route, which
   * that node must recognise as its own) was recorded in Redis with the client's bindings. 430 when
   * there is none, or when its node says the connection is gone or does not answer.
   */
  private async toRemoteFlow (remote: RemoteFlows, request: SipRequest, flow: number, facts: MessageFacts): Promise<void> {
    const { log, outcomes } = this.options
    const ws = await remote.connection(flow).catch((err: unknown) => {
      log.info({ err, ...facts, flow }, 'sip core: flow of another node not looked up')
      return null
    })
    if (ws === null) {
      this.flowFailed(request, flow)
      return
    }
    const data = this.toFlow(request, flow, ws)
    if (request.method === 'ACK') {
      // Nothing answers an ACK: one publish, unconfirmed.
      if (this.options.sendWs(flow, data)) return
      outcomes.dropped('the flow of another node could not be written to', { ...facts, flow })
      return
    }
    const delivered = await remote.send(flow, data).catch((err: unknown) => {
      log.info({ err, ...facts, flow }, 'sip core: relay to another node not confirmed')
      return false
    })
    if (!delivered) {
      this.flowGone(request, flow)
      return
    }
    outcomes.sent()
    log.debug({ ...facts, to: flow }, 'sip core: request relayed to its flow on another node')
  }

  /** The request was not taken by its flow: its own Via off again, and 430. */
  private flowGone (request: SipRequest, flow: number): void {
    request.shift('via', splitList)
    this.flowFailed(request, flow)
  }

  /** RFC 5626 §5.3: the flow the token names is gone, so the core may try another binding. */
  private flowFailed (request: SipRequest, flow: number): void {
    this.options.reply(request, 430, 'Flow Failed', `flow ${flow} is gone`)
  }
}
