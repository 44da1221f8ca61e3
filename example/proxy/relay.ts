import type { FastifyBaseLogger } from 'fastify'
import { splitList } from '../sip/headers'
import type { SipRequest, SipResponse } from '../sip/message'
import { hostPort } from '../sip/address'
import type { SipUri } from '../sip/uri'
import { decrementMaxForwards } from '../sip/validate'
import type { ConnectionLocal } from './connection-local'
import { factsOf, type Outcomes } from './outcome'
import type { Parking } from './parking'
import type { ProxyVia } from './proxy-via'
import type { Binding, MovingUser, Registrar, RemoteBinding } from './registrar'

/** The SIP core side of the edge (core/bridge.ts), when there is a core. */
export interface CoreSide {
  /** A Route URI the edge made facing the core (its address, or a flow token of any node of the cluster). */
  namesEdge: (uri: SipUri) => boolean
  /**
   * A client's request (Max-Forwards already counted) on its way to the core; `timedOut` gets it back
   * when the core never answers (RFC 3261 §16.8: the proxy then answers 408 itself).
   */
  toCore: (id: number, request: SipRequest, timedOut: (request: SipRequest) => void) => void
  /** A client's response to a request the core sent, its Via of ours already popped. */
  responseToCore: (response: SipResponse) => void
}

/** The bindings of the other nodes of a cluster (cluster/locations.ts), and this node's written there. */
export interface Locations {
  /** Settles once every binding written so far is in Redis (or failed, logged). */
  written: () => Promise<void>
  /** A connection closed: its record goes. */
  closed: (connectionId: number) => void
  /** The connection will be closed for a drain: its bindings, dropped from now on, mark their users moving. */
  moving: (connectionId: number) => void
  /**
   * The live binding a Request-URI names on another node, whether its user is moving to another node, or
   * null; rejects when that cannot be told.
   */
  find: (ruri: SipUri) => Promise<RemoteBinding | MovingUser | null>
  /** A confirmed send to a connection of any node: false when it is gone. */
  send: (connectionId: number, data: string | Buffer) => Promise<boolean>
  /** Drops a binding found stale. */
  forget: (binding: RemoteBinding) => Promise<void>
}

/**
 * Seconds a client is told to wait (Retry-After) when a request cannot be delivered for now: its user is
 * moving between nodes, or Redis is away. Both are over within seconds.
 */
export const RETRY_AFTER_SECONDS = 5

/** How the proxy answers a request itself; `why` goes in the log line of a refusal. */
export type Reply = (id: number, request: SipRequest, status: number, reason: string, why: string, extra?: Array<[string, string]>) => void

export interface RelayOptions {
  /** Sends a SIP message to a connection; false when the connection is gone. */
  send: (id: number, data: string | Buffer) => boolean
  reply: Reply
  outcomes: Outcomes
  log: FastifyBaseLogger
  registrar: Registrar
  connections: ReadonlyMap<number, ConnectionLocal>
  via: ProxyVia
  core: CoreSide | null
  locations: Locations | null
  /** Where requests for moving users wait (in a cluster); null: they get 480 at once. */
  parking?: Parking | null
}

/**
 * RFC 3261 §16.5–16.6 for one target, stateless, once the edge's own Routes are gone (route-set.ts): a
 * request for a user goes to the connection of the user's newest binding (this node's, else another
 * node's through the cluster), else to the core, else 404. With a core, REGISTER and requests that still
 * have a Route go to the core.
 */
export class Relay {
  constructor (private readonly options: RelayOptions) {}

  relay (id: number, request: SipRequest, ruri: SipUri): void | Promise<void> {
    const { core, locations } = this.options
    if (!decrementMaxForwards(request)) {
      this.options.reply(id, request, 483, 'Too Many Hops', 'Max-Forwards is 0')
      return
    }
    // A request that still has a Route after ours follows it (a dialog set up through the core).
    if (core !== null && (request.method === 'REGISTER' || request.has('route'))) {
      this.toCore(core, id, request)
      return
    }
    const binding = this.lookup(ruri)
    if (binding !== undefined) this.relayTo(id, request, binding)
    else if (locations !== null) return this.relayRemote(locations, id, request, ruri).then(() => {})
    else this.noBinding(id, request, ruri)
  }

  private toCore (core: CoreSide, id: number, request: SipRequest): void {
    core.toCore(id, request, (sent) => { this.options.reply(id, sent, 408, 'Request Timeout', 'the core did not answer') })
  }

  /** Nobody the request is for is registered (anywhere in the cluster): to the core, else 404. */
  private noBinding (id: number, request: SipRequest, ruri: SipUri): void {
    if (this.options.core !== null) {
      this.toCore(this.options.core, id, request)
      return
    }
    this.options.reply(id, request, 404, 'Not Found', `nobody registered as ${ruri.user ?? ruri.host}`)
  }

  /** The open binding a Request-URI names: an AOR's newest, or the one whose contact it is. */
  private lookup (ruri: SipUri): Binding | undefined {
    const { registrar, connections } = this.options
    const binding = registrar.lookup(ruri.user ?? '') ?? registrar.lookupContact(ruri)
    return binding === undefined || !connections.has(binding.connectionId) ? undefined : binding
  }

  private relayTo (id: number, request: SipRequest, binding: Binding): void {
    const target = this.options.connections.get(binding.connectionId)
    if (target === undefined) return
    this.retarget(id, request, binding, target)
    if (!this.options.send(binding.connectionId, request.payload())) {
      this.notRelayed(id, request)
      return
    }
    this.options.log.debug({ id, to: binding.connectionId, method: request.method, aor: binding.aor }, 'sip: relayed request')
  }

  /**
   * To a binding on another node: looked up in Redis, sent with a confirmed `wsCluster.send`. The send is
   * made at once, in order with every other of this node; only its outcome is awaited, off this
   * connection's queue. No answer in time, or Redis away, gets 480 with Retry-After. A user moving to
   * another node (its node drains) is waited for (`park`); one nobody has a binding of gets 404 (or goes to
   * the core). Resolves true once the request is dealt with, false while it must wait longer (`parked`).
   */
  private async relayRemote (locations: Locations, id: number, request: SipRequest, ruri: SipUri, parked = false): Promise<boolean> {
    let found: RemoteBinding | MovingUser | null
    try {
      found = await locations.find(ruri)
    } catch (err) {
      // Parked, it waits on: Redis may be back before its time is up.
      if (parked) return false
      this.options.log.warn({ err, id, user: ruri.user, callId: request.get('call-id') }, 'sip cluster: lookup failed')
      // A core reaches every client of the edge through their Paths, Redis or not.
      if (this.options.core !== null) this.toCore(this.options.core, id, request)
      else this.unavailable(id, request, 'the cluster lookup failed')
      return true
    }
    if (found === null) {
      // A parked request's user was registered a moment ago: not "no such user", only not back in time.
      if (parked) this.unavailable(id, request, 'its user, moving between nodes, has no binding any more')
      else this.noBinding(id, request, ruri)
      return true
    }
    if ('movingUntil' in found) return parked ? false : this.park(id, request, ruri, found)
    this.sendRemote(locations, id, request, ruri, found, parked)
    return true
  }

  /**
   * Sends to the binding's connection. False (the connection is gone) drops the binding and looks again,
   * once: its user may be moving, or registered elsewhere already.
   */
  private sendRemote (locations: Locations, id: number, request: SipRequest, ruri: SipUri, binding: RemoteBinding, again: boolean): void {
    const { log } = this.options
    this.retarget(id, request, binding, binding.local ?? this.options.connections.get(id))
    const text = request.payload()
    if (request.method === 'ACK') {
      // Nothing answers an ACK: one publish, unconfirmed.
      this.options.send(binding.connectionId, text)
      return
    }
    const { connectionId, node } = binding
    // Rejections of the handlers themselves are caught too: nothing here may become an unhandled rejection.
    locations.send(connectionId, text).then(async (delivered) => {
      if (delivered) {
        this.options.outcomes.sent()
        log.debug({ id, to: connectionId, node, method: request.method }, 'sip cluster: relayed request')
        return
      }
      request.shift('via', splitList)
      // No live connection behind it: the next request for that user is not sent there again.
      await locations.forget(binding).catch((err: unknown) => { log.debug({ err, to: connectionId, node }, 'sip cluster: stale binding not removed') })
      const next = again ? null : await locations.find(ruri).catch(() => null)
      if (next === null) this.unavailable(id, request, 'its connection on another node is gone')
      else if ('movingUntil' in next) this.park(id, request, ruri, next)
      else this.sendRemote(locations, id, request, ruri, next, true)
    }, (err: unknown) => {
      log.info({ err, id, to: connectionId, node, callId: request.get('call-id') }, 'sip cluster: relay not confirmed')
      this.notRelayed(id, request)
    }).catch((err: unknown) => {
      log.error({ err, id, to: connectionId, callId: request.get('call-id') }, 'sip cluster: relay failed')
      this.unavailable(id, request, 'relay failed')
    })
  }

  /**
   * A request for a user who is moving to another node waits for the user's registration there, until the
   * move's grace period ends; past it, or when the lot is full, 480 with Retry-After. Never 404: the user
   * was registered a moment ago. An ACK has nobody to wait for it: it is dropped, logged.
   */
  private park (id: number, request: SipRequest, ruri: SipUri, moving: MovingUser): true {
    const { parking, locations } = this.options
    if (request.method === 'ACK') {
      this.options.outcomes.dropped('an ACK for a user moving between nodes has nobody to wait for it', factsOf(request, 'from-ws', { id, aor: moving.aor }))
      return true
    }
    const held = parking != null && locations !== null && parking.hold({
      source: id,
      message: request,
      aor: moving.aor,
      until: moving.movingUntil,
      retry: async () => {
        const binding = this.lookup(ruri)
        if (binding === undefined) return await this.relayRemote(locations, id, request, ruri, true)
        this.relayTo(id, request, binding)
        return true
      },
      expire: (why) => { this.unavailable(id, request, `its user, moving between nodes, was not back in time (${why})`) }
    })
    if (held) this.options.outcomes.waiting('parked until its user registers again', factsOf(request, 'from-ws', { id, aor: moving.aor }))
    else this.unavailable(id, request, 'its user is moving between nodes and the parking is full')
    return true
  }

  /**
   * A registrar-proxy retargets to the registered contact (RFC 3261 §16.5): UAs such as JsSIP answer 404
   * to a Request-URI that is neither their AOR's user nor their contact. The Via names the source
   * connection and is sent by `target`: the target connection's local side, or the source's when the
   * target's was not recorded.
   */
  private retarget (id: number, request: SipRequest, binding: { uri: string }, target: ConnectionLocal | undefined): void {
    request.uri = binding.uri
    const sentBy = target === undefined ? 'invalid' : hostPort({ host: target.localAddress, port: target.localPort })
    request.prepend('Via', this.options.via.make(request, target?.secure === true ? 'WSS' : 'WS', sentBy, id))
  }

  /** 480 with Retry-After: the user may be reachable again in a moment; `why` goes in the refusal's line. */
  private unavailable (id: number, request: SipRequest, why: string): void {
    this.options.reply(id, request, 480, 'Temporarily Unavailable', why, [['Retry-After', String(RETRY_AFTER_SECONDS)]])
  }

  /** The target did not take a request we had put our Via on: the 480 goes to the sender's Via. */
  private notRelayed (id: number, request: SipRequest): void {
    request.shift('via', splitList)
    this.unavailable(id, request, 'not delivered')
  }
}
