import type { ClientOptions } from 'ws'
import { LwscClosedError } from '../errors'
import { resolveLwscOptions, type LwscOptions, type LwscOptionsResolved } from '../options'
import { OrderedList } from '../ordered-list'
import { payloadError } from '../arguments'
import type { WsData } from '../types'
import type { LwscContext } from './context'
import { Endpoint } from './endpoint'
import { withUrl } from './error-url'
import { Job } from './job'
import { silentLogger, type LwscLogger } from './logger'
import { newCounters, type LwscStats } from './stats'
import { checkTarget } from './target'

type Settle = (value: string | Buffer | undefined) => void

/**
 * A WebSocket client for talking to other services, like Kamailio's `lwsc` module: connections are kept per
 * (url, sub-protocol) and reused, one request in flight on each, with a bounded pool and queue per target.
 */
export class LwscClient {
  readonly options: Readonly<LwscOptionsResolved>
  private readonly ctx: LwscContext
  // url → sub-protocol → endpoint: two lookups and no string building on each call.
  private readonly endpoints = new Map<string, Map<string, Endpoint>>()
  /** Every cached endpoint, least recently used first, for eviction past `maxEndpoints`. */
  private readonly recent = new OrderedList<Endpoint>()
  private endpointCount = 0
  private keepaliveTimer: NodeJS.Timeout | null = null
  private closing: Promise<void> | null = null

  constructor (options?: LwscOptions, logger: LwscLogger = silentLogger) {
    const resolved = resolveLwscOptions(options)
    this.options = Object.freeze(resolved)
    const wsOptions: ClientOptions & { closeTimeout: number } = {
      // TLS settings (ca, cert, rejectUnauthorized ...) go to tls.connect through ws. @types/ws declares
      // checkServerIdentity with a different signature from the tls.connect one ws actually calls.
      ...(resolved.tls as ClientOptions | undefined),
      perMessageDeflate: false,
      followRedirects: false,
      maxPayload: resolved.maxPayload,
      // A reply's connection serves its next job only after every message of that read was emitted (see
      // Connection.onMessage), so a second answer in the same read is dropped rather than taken as the next
      // reply. ws's default today; set here, after the user's `tls` options, so nothing turns it off.
      allowSynchronousEvents: true,
      // How long close() waits for the peer's Close before destroying the socket.
      closeTimeout: resolved.timeoutRead
    }
    if (resolved.origin !== undefined) wsOptions.origin = resolved.origin
    if (resolved.headers !== undefined) wsOptions.headers = { ...resolved.headers }
    this.ctx = { options: resolved, log: logger, counters: newCounters(), wsOptions, discarded: new Set(), closed: false }
  }

  /** Sends without waiting for a reply, offering the default sub-protocol. See `notifyProto`. */
  notify (url: string, data: WsData): Promise<void> {
    return this.notifyProto(url, this.ctx.options.protocol, data)
  }

  /**
   * Sends without waiting for a reply. Resolves once the data is written to the socket, or once the target
   * is given up on (refused, timed out, queue full): the failure is logged and counted in
   * `stats().failedNotifies`, never thrown. Rejects only for a bad argument or after `close()`.
   */
  notifyProto (url: string, proto: string, data: WsData): Promise<void> {
    const endpoint = this.endpointFor(url, proto, data)
    if (!(endpoint instanceof Endpoint)) return Promise.reject(endpoint)
    this.ctx.counters.notifies++
    return new Promise<void>((resolve, reject) => {
      endpoint.submit(new Job(data, false, resolve as Settle, reject))
    })
  }

  /** Sends and resolves with the next message on that connection, offering the default sub-protocol. */
  request (url: string, data: WsData): Promise<string | Buffer> {
    return this.requestProto(url, this.ctx.options.protocol, data)
  }

  /**
   * Sends on a connection offering sub-protocol `proto` and resolves with the next message received on it:
   * a string for a text frame, a Buffer for a binary one.
   */
  requestProto (url: string, proto: string, data: WsData): Promise<string | Buffer> {
    const endpoint = this.endpointFor(url, proto, data)
    if (!(endpoint instanceof Endpoint)) return Promise.reject(endpoint)
    this.ctx.counters.requests++
    return new Promise<string | Buffer>((resolve, reject) => {
      endpoint.submit(new Job(data, true, resolve as Settle, reject))
    })
  }

  stats (): LwscStats {
    let connections = 0
    let connecting = 0
    let inFlight = 0
    let queued = 0
    for (const byProto of this.endpoints.values()) {
      for (const endpoint of byProto.values()) {
        connections += endpoint.openCount
        connecting += endpoint.connectingCount
        inFlight += endpoint.inFlight
        queued += endpoint.queued
      }
    }
    return { connections, connecting, inFlight, queued, endpoints: this.endpointCount, ...this.ctx.counters }
  }

  /**
   * Closes every connection (Close 1000), rejects waiting and in-flight requests with LwscClosedError and
   * resolves when every socket is closed. Later calls return the same promise.
   */
  close (): Promise<void> {
    if (this.closing !== null) return this.closing
    this.ctx.closed = true
    if (this.keepaliveTimer !== null) {
      clearInterval(this.keepaliveTimer)
      this.keepaliveTimer = null
    }
    const pending: Array<Promise<void>> = []
    for (const byProto of this.endpoints.values()) {
      for (const endpoint of byProto.values()) pending.push(endpoint.close())
    }
    this.endpoints.clear()
    for (let link = this.recent.head; link !== null; link = this.recent.head) this.recent.unlink(link)
    this.endpointCount = 0
    for (const conn of this.ctx.discarded) pending.push(conn.close())
    this.closing = Promise.all(pending).then(() => undefined)
    return this.closing
  }

  // Returns the error instead of throwing so the public methods can reject without an async wrapper.
  private endpointFor (url: string, proto: string, data: unknown): Endpoint | Error {
    if (this.ctx.closed) return new LwscClosedError(url)
    const bad = payloadError(data)
    if (bad !== null) return withUrl(bad, url)
    let byProto = this.endpoints.get(url)
    const known = byProto?.get(proto)
    if (known !== undefined) {
      this.recent.moveToTail(known.recentLink)
      return known
    }
    try {
      checkTarget(url, proto)
    } catch (err) {
      return err as Error
    }
    if (byProto === undefined) {
      byProto = new Map()
      this.endpoints.set(url, byProto)
    }
    const endpoint = new Endpoint(url, proto, this.ctx, this.release)
    byProto.set(proto, endpoint)
    this.recent.moveToTail(endpoint.recentLink)
    if (++this.endpointCount > this.ctx.options.maxEndpoints) this.evict()
    const interval = this.ctx.options.keepaliveInterval
    if (this.keepaliveTimer === null && interval > 0) {
      this.keepaliveTimer = setInterval(this.sweep, interval).unref()
    }
    return endpoint
  }

  private readonly release = (endpoint: Endpoint): void => {
    const byProto = this.endpoints.get(endpoint.url)
    if (byProto?.get(endpoint.proto) !== endpoint) return
    byProto.delete(endpoint.proto)
    if (byProto.size === 0) this.endpoints.delete(endpoint.url)
    this.recent.unlink(endpoint.recentLink)
    this.endpointCount--
  }

  /**
   * Past `maxEndpoints`, forgets the least recently used endpoints that have nothing under way, and closes
   * their connections: a caller fanning out to endless distinct URLs, or to targets that keep failing, must
   * not grow the cache without end. Endpoints with jobs waiting or in flight are passed over, so the cache
   * holds more only while that many targets are busy at once; the next endpoint created evicts again.
   */
  private evict (): void {
    // The tail is the endpoint just created, for a job about to be submitted.
    for (let link = this.recent.head; link !== null && link !== this.recent.tail && this.endpointCount > this.ctx.options.maxEndpoints;) {
      const endpoint = link.owner
      link = link.next
      if (!endpoint.evictable) continue
      this.release(endpoint)
      endpoint.retire()
      if (this.ctx.options.verbosity >= 2) this.ctx.log.debug({ url: endpoint.url, proto: endpoint.proto, maxEndpoints: this.ctx.options.maxEndpoints }, 'lwsc: endpoint evicted')
    }
  }

  // Pings every open connection (Kamailio's lwsc pings every 5 s) and forgets endpoints left with nothing.
  private readonly sweep = (): void => {
    const now = Date.now()
    for (const byProto of this.endpoints.values()) {
      for (const endpoint of byProto.values()) {
        endpoint.keepalive()
        if (endpoint.stale(now)) this.release(endpoint)
      }
    }
  }
}
