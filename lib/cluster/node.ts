import type { FastifyBaseLogger } from 'fastify'
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { ClusterUnavailableError } from '../errors'
import { Channels } from './channels'
import { Heartbeats } from './heartbeat'
import { leaseOf } from './ids'
import { holders } from './lease'
import { Leases } from './leases'
import { RedisLink } from './link'
import { Membership, type Heartbeat } from './membership'
import type { RedisPair } from './redis'
import { Rejoin } from './rejoin'
import { Requests } from './requests'
import { NO_CONNECTIONS, type Cluster, type LocalConnections, type ViewAnswer, type ViewQuery } from './seam'
import { StallWatch } from './stall'
import type { ClusterNodeInfo, ClusterRejoinedEvent } from './types'
import { Views, type Query } from './views'
import { decode } from './wire'
import { Operations } from './operations'
import type { NodeParts } from './parts'

export interface ClusterSettings {
  /** Key and channel prefix in Redis. */
  prefix: string
  nodeTimeout: number
  requestTimeout: number
  connectTimeout: number
}

/** What the node tells the app: another node gone, or this one back after the others may have counted it gone. */
export interface ClusterEvents {
  nodeDown: (node: ClusterNodeInfo) => void
  rejoined: (event: ClusterRejoinedEvent) => void
}

type Control = Heartbeat | { t: 'bye', i: string } | { t: 'fence', i: string, n: number } | Query

/**
 * This process as a node of a Redis cluster: it holds a slot lease and makes ids under it (leases.ts),
 * subscribes to its leases' channels for operations on its connections (operations.ts), beats and keeps the
 * view of live nodes (heartbeat.ts), and answers and asks cluster-wide views (views.ts). This class wires
 * them, routes what arrives, and runs the timer.
 */
export class RedisCluster implements Cluster {
  readonly instance = `${randomBytes(6).toString('hex')}-${process.pid}`
  readonly ids: Leases
  readonly remote: Operations
  private readonly link: RedisLink
  private readonly channels: Channels
  private readonly membership: Membership
  private readonly requests: Requests
  private readonly heartbeats: Heartbeats
  private readonly views: Views
  private readonly stall: StallWatch
  private readonly rejoin: Rejoin
  private readonly beatMs: number
  private local: LocalConnections = NO_CONNECTIONS
  private timer: NodeJS.Timeout | null = null
  private renewing = false
  private stopped = false

  constructor (pair: RedisPair, private readonly settings: ClusterSettings, private readonly log: FastifyBaseLogger, events: ClusterEvents) {
    const { nodeTimeout } = settings
    // Heartbeats and renewals four times per nodeTimeout. A node three beats silent is checked in Redis,
    // where its presence, renewed with its last beat, has run out just then if it is gone: known within
    // nodeTimeout.
    this.beatMs = Math.max(50, Math.floor(nodeTimeout / 4))
    const silenceMs = nodeTimeout - this.beatMs
    this.link = new RedisLink(pair, this.instance, log, () => { this.tick() })
    this.channels = new Channels(settings.prefix)
    this.membership = new Membership(silenceMs)
    this.requests = new Requests(settings.requestTimeout)
    this.ids = new Leases(this.link, this.channels, settings.prefix, this.instance, nodeTimeout, log, silenceMs)
    const parts: NodeParts = { instance: this.instance, nodeTimeout, link: this.link, channels: this.channels, leases: this.ids, membership: this.membership, requests: this.requests, log }
    this.remote = new Operations(parts)
    this.heartbeats = new Heartbeats(parts, () => this.local.size, events.nodeDown)
    this.views = new Views(parts)
    this.stall = new StallWatch(this.beatMs, nodeTimeout)
    this.rejoin = new Rejoin(this.instance, nodeTimeout, (event) => {
      this.log.warn(event, 'fastify-sip-ws: cluster: this node may have been counted gone; back in Redis')
      events.rejoined(event)
    })
  }

  /**
   * Connects, takes a slot, writes its presence, learns the other nodes from their leases and announces
   * itself, so it knows them and they know it at once; rejects with a typed error if Redis cannot be
   * reached in time.
   */
  async start (local: LocalConnections): Promise<void> {
    this.local = local
    this.remote.serve(local)
    // Listening before subscribing: an announce that comes between the two must not be missed.
    this.link.subscriber.on('messageBuffer', this.onMessage)
    try {
      await this.link.connect(this.settings.connectTimeout, async () => {
        await this.ids.take()
        await this.link.subscriber.subscribe(this.channels.control)
        this.rejoin.renewed(await this.ids.renew(), Date.now())
        this.membership.learned(await holders(this.link.commands, this.settings.prefix), this.instance, Date.now())
      })
    } catch (err) {
      this.stopped = true
      this.link.subscriber.off('messageBuffer', this.onMessage)
      throw err
    }
    this.timer = setInterval(this.tick, this.beatMs).unref()
    this.stall.tick(Date.now())
    this.heartbeats.beat()
    this.log.info({ instance: this.instance, ...leaseOf(this.ids.currentPrefix), known: [...this.membership.values()].length }, 'fastify-sip-ws: cluster node up')
  }

  /** Leaves: frees the slot and the presence, then says so, so the others need not wait for silence. */
  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    if (this.timer !== null) clearInterval(this.timer)
    this.requests.fail(null, new ClusterUnavailableError('the node is closing'))
    this.link.subscriber.off('messageBuffer', this.onMessage)
    await this.link.close(async () => {
      await this.ids.release().catch(() => {})
      await this.link.commands.publish(this.channels.control, JSON.stringify({ t: 'bye', i: this.instance })).catch(() => {})
    }, this.settings.requestTimeout)
  }

  async ask (query: ViewQuery, local: ViewAnswer): Promise<{ answers: ViewAnswer[], missing: ClusterNodeInfo[] }> {
    return await this.views.ask(query, local)
  }

  /** Every live node, this one first. */
  nodes (): ClusterNodeInfo[] {
    const self: ClusterNodeInfo = { instance: this.instance, slot: this.ids.slot, prefixes: this.ids.prefixes(), host: hostname(), pid: process.pid, connections: this.local.size, lastSeen: Date.now(), self: true }
    return [self, ...[...this.membership.values()].map((n) => ({ ...n }))]
  }

  /**
   * Renews the lease and presence and beats while Redis is up; checks silent nodes, unless the loop just
   * stalled and the heartbeats that came meanwhile are unread (stall.ts). Also run at once when Redis is back.
   */
  private readonly tick = (): void => {
    if (this.stopped) return
    const now = Date.now()
    const away = this.stall.tick(now)
    if (away > 0) {
      this.rejoin.away(away)
      const level = away > this.settings.nodeTimeout ? 'warn' : 'debug'
      this.log[level]({ instance: this.instance, awayMs: away }, 'fastify-sip-ws: cluster: this node\'s event loop stalled; judging the others once their heartbeats are read')
      if (this.link.ready) this.link.commands.publish(this.channels.control, JSON.stringify({ t: 'fence', i: this.instance, n: this.stall.fenceNumber })).catch(() => {})
    }
    if (this.link.ready) {
      this.renew()
      this.heartbeats.beat()
    }
    if (this.stall.settled(now)) this.heartbeats.sweep(now)
  }

  /** One renewal at a time: a stalled Redis holds it, and the next tick does not pile another on. */
  private renew (): void {
    if (this.renewing) return
    this.renewing = true
    this.ids.renew().then((renewed) => { if (!this.stopped) this.rejoin.renewed(renewed, Date.now()) }, (err: unknown) => {
      this.log.debug({ err }, 'fastify-sip-ws: cluster: lease not renewed; tried again at the next beat')
    }).finally(() => { this.renewing = false })
  }

  private readonly onMessage = (channel: Buffer, message: Buffer): void => {
    if (channel.length === this.channels.control.length && channel.toString() === this.channels.control) {
      this.onControl(message)
      return
    }
    const decoded = decode(message)
    if (decoded === null) this.log.warn({ channel: channel.toString(), bytes: message.length }, 'fastify-sip-ws: cluster: malformed message dropped')
    else if ('op' in decoded) this.remote.perform(decoded)
    else if (!this.requests.answered(decoded)) this.log.debug({ request: decoded.request }, 'fastify-sip-ws: cluster: answer dropped: its request has ended')
  }

  private onControl (message: Buffer): void {
    let control: Control | null = null
    try {
      control = JSON.parse(message.toString()) as Control
    } catch {}
    if (control === null || typeof control !== 'object') {
      this.log.warn({ bytes: message.length }, 'fastify-sip-ws: cluster: malformed control message dropped')
      return
    }
    if (control.t === 'hb') this.heartbeats.heard(control)
    else if (control.t === 'bye') this.heartbeats.left(control.i)
    else if (control.t === 'q') this.views.answer(control, this.local)
    else if (control.t === 'fence' && control.i === this.instance) this.stall.fenced(control.n)
  }
}
