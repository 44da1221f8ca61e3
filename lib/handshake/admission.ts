import type { FastifyRequest } from 'fastify'
import { RETRY_AFTER_SECONDS } from '../constants'
import type { Registry } from '../connection/registry'
import type { Settings } from '../options'
import { checkRequest, chooseProtocol, parseProtocols } from './checks'
import type { Refusal } from './refusal'

/** Whether this node takes handshakes now: the lifecycle's answer. */
export interface ServiceState {
  /** The 503 a handshake gets while the node drains or shuts down, or null while it serves. */
  leavingRefusal: () => Refusal | null
  readonly enabled: boolean
}

/** A handshake let in: the sub-protocol to answer with, in the client's spelling. */
export interface Admitted {
  protocol: string
}

/**
 * The checks of Kamailio's `ws_handle_handshake()`, plus ours, in order: the node serves, the request is a
 * valid RFC 6455 opening handshake, a sub-protocol can be chosen, and the connection limits allow one more.
 * It decides and changes nothing; the caller refuses or accepts.
 */
export class Admission {
  constructor (
    private readonly settings: Settings,
    private readonly service: ServiceState,
    private readonly registry: Registry
  ) {}

  /** The 503 while the node drains or shuts down, asked before the `xhttp:request` hooks run. */
  leavingRefusal (): Refusal | null {
    return this.service.leavingRefusal()
  }

  /**
   * A hook's mistake (a `wsSubProtocol` that is not a string, or not one the client offered) is the
   * server's fault: a 500 whose log line names it.
   */
  admit (request: FastifyRequest, remoteAddress: string): Admitted | Refusal {
    const leaving = this.service.leavingRefusal()
    if (leaving !== null) return leaving
    if (!this.service.enabled) return { status: 503, message: 'WebSocket service disabled' }
    const refusal = checkRequest(request.raw)
    if (refusal !== null) return refusal
    const offered = parseProtocols(request.raw.headers['sec-websocket-protocol'])
    if (offered === null) return { status: 400, message: 'Invalid Sec-WebSocket-Protocol header: expected a comma-separated list of tokens' }
    const chosen: unknown = request.wsSubProtocol
    if (chosen !== null && chosen !== undefined && typeof chosen !== 'string') {
      return { status: 500, message: `An xhttp:request hook set request.wsSubProtocol to a ${typeof chosen}; expected the name of an offered sub-protocol` }
    }
    const choice = chooseProtocol(offered, this.settings.enabledProtocols, chosen ?? undefined)
    if (!('protocol' in choice)) return choice
    return this.limitRefusal(remoteAddress) ?? choice
  }

  private limitRefusal (remoteAddress: string): Refusal | null {
    const { maxConnections, maxConnectionsPerIp } = this.settings
    if (maxConnections > 0 && this.registry.size >= maxConnections) {
      return { status: 503, headers: { 'Retry-After': String(RETRY_AFTER_SECONDS) }, message: `Connection limit reached (${maxConnections})` }
    }
    if (maxConnectionsPerIp > 0 && this.registry.countFrom(remoteAddress) >= maxConnectionsPerIp) {
      return { status: 503, headers: { 'Retry-After': String(RETRY_AFTER_SECONDS) }, message: `Connection limit per address reached (${maxConnectionsPerIp})` }
    }
    return null
  }
}
