import type { FastifyBaseLogger } from 'fastify'
import { parseSip, SipParseError, SipResponse, type SipMessage, type SipRequest } from '../sip/message'
import { localResponse } from '../sip/reply'
import { parseUri } from '../sip/uri'
import { validate } from '../sip/validate'
import type { ConnectionLocal } from './connection-local'
import type { ProxyVia } from './proxy-via'
import { DEFAULT_EXPIRES, register } from './register'
import type { Registrar } from './registrar'
import type { Parking } from './parking'
import { PendingAnswers } from './pending-answers'
import { Relay, type CoreSide, type Locations } from './relay'

export interface SipProxyOptions {
  /** Sends a SIP message as a text frame; false when the connection is gone. */
  send: (id: number, text: string) => boolean
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

/**
 * A stateless SIP proxy and registrar for WebSocket clients (RFC 3261 §16.11, RFC 7118): it answers
 * OPTIONS and REGISTER itself and relays every other request to the connection of the user it is for.
 *
 * Each relayed request gets a Via naming the connection it came from (`;cid=<id>`, see proxy-via.ts), so
 * the response finds its way back by popping that Via, with no transaction state kept.
 *
 * With a core, REGISTER and every request for someone not registered here go to the core through the
 * CoreSide, and responses for the core's requests go back to it.
 *
 * In a cluster, bindings are written through to Redis (the registrar's listener), and a request for a
 * user not registered on this node is looked up there and sent to its node's connection with a confirmed
 * `wsCluster.send`. Connection ids are cluster-wide, so the Via's `cid` leads a response back from any
 * node. Only those lookups and a REGISTER's write wait (on Redis); everything else stays synchronous.
 */
export class SipProxy {
  private readonly relay: Relay
  /** Whether each connection may still be owed an answer: a drain waits for it. */
  private readonly pending = new PendingAnswers()
  /** Every send of the proxy: to a connection of this node, it tells `pending` something went to it. */
  private readonly send = (id: number, text: string): boolean => {
    if (!this.options.send(id, text)) return false
    if (this.options.connections.has(id)) this.pending.sent(id)
    return true
  }
  private readonly maxExpires: number
  private readonly serverName: string

  constructor (private readonly options: SipProxyOptions) {
    this.maxExpires = options.maxExpires ?? DEFAULT_EXPIRES
    this.serverName = options.serverName ?? SERVER_NAME
    this.relay = new Relay({ ...options, send: this.send, reply: (id, request, status, reason, extra) => { this.reply(id, request, status, reason, extra) } })
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
   * One WebSocket message. Never throws or rejects: bad input gets a 400 (requests) or is dropped
   * (responses). Returns a promise only when the message waits on the cluster (a lookup in Redis, or a
   * REGISTER's write there), so the plugin runs the connection's next message after it: an INVITE's
   * CANCEL never overtakes it.
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
    this.options.log.error({ err, id }, 'sip: message handling failed')
    if (message.kind === 'request' && message.method !== 'ACK') this.reply(id, message, 500, 'Server Internal Error')
  }

  private routeRequest (id: number, request: SipRequest): void | Promise<void> {
    const { core } = this.options
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
    if (request.method === 'REGISTER' && core === null) return this.register(id, request)
    if (ruri.user === null && request.method !== 'REGISTER') {
      // Addressed to the proxy itself (no user part).
      if (request.method === 'OPTIONS') {
        this.reply(id, request, 200, 'OK', [['Allow', ALLOW], ['Accept', 'text/plain, application/sdp'], ['Supported', core === null ? 'path' : 'path, outbound']])
      } else if (request.method !== 'ACK') {
        this.reply(id, request, 404, 'Not Found')
      }
      return
    }
    return this.relay.relay(id, request, ruri)
  }

  /**
   * In a cluster, a REGISTER is answered once Redis has its bindings, so another node finds them as soon
   * as the UA knows it is registered. (The 200 lists the bindings made through this node.)
   */
  private register (id: number, request: SipRequest): void | Promise<void> {
    const { status, reason, extra, written } = register(this.options.registrar, this.options.log, this.maxExpires, id, request)
    const { locations } = this.options
    if (!written || locations === null) {
      this.reply(id, request, status, reason, extra)
      return
    }
    return locations.written().then(() => { this.reply(id, request, status, reason, extra) })
  }

  private routeResponse (id: number, response: SipResponse): void {
    const popped = this.options.via.pop(response)
    if ('problem' in popped) {
      if (popped.problem === 'not ours') this.options.log.debug({ id, status: response.status }, 'sip: response with no Via of ours dropped')
      else this.options.log.info({ id, status: response.status }, 'sip: response with a forged or damaged Via dropped')
      return
    }
    if (popped.source === 'core') {
      this.options.core?.responseToCore(response)
      return
    }
    const text = response.toString()
    if (this.send(popped.source, text)) {
      this.options.log.debug({ id, to: popped.source, status: response.status }, 'sip: relayed response')
      return
    }
    if (this.options.connections.has(popped.source) || !this.holdResponse(popped.source, response, text)) this.undelivered(id, popped.source, response)
  }

  /**
   * A response for a connection of another node, while Redis (its way there) is away: held and sent again
   * until it goes, for RESPONSE_HOLD_MS, so its caller is answered late rather than never (a client waits
   * 32 s for a final response).
   */
  private holdResponse (to: number, response: SipResponse, text: string): boolean {
    const { parking, log } = this.options
    const held = parking != null && parking.hold({
      source: to,
      message: response,
      aor: '',
      until: Date.now() + RESPONSE_HOLD_MS,
      retry: async () => this.send(to, text),
      expire: () => { this.undelivered(null, to, response) }
    })
    if (held) log.info({ to, status: response.status, callId: response.get('call-id') }, 'sip cluster: response held until Redis is back')
    return held
  }

  private undelivered (id: number | null, to: number, response: SipResponse): void {
    // Its request's sender closed its connection (or its node is gone): nobody is left to tell.
    this.options.log.warn({ id, to, status: response.status, callId: response.get('call-id'), cseq: response.get('cseq') }, 'sip: response not delivered: its connection is closed')
  }

  private reply (id: number, request: SipRequest, status: number, reason: string, extra: Array<[string, string]> = []): void {
    if (this.send(id, localResponse(request, status, reason, this.serverName, extra).toString())) return
    this.options.log.warn({ id, status, method: request.method, callId: request.get('call-id') }, 'sip: response not delivered: its connection is closed')
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
    this.send(id, response.toString())
  }
}
