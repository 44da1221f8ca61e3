import type { FastifyBaseLogger } from 'fastify'
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { ClusterUnavailableError } from '../errors'
import { Channels } from './channels'
import { Heartbeats } from './heartbeat'
import { leaseOf } from './ids'
import { Leases } from './leases'
import { RedisLink } from './link'
import { Membership, type Heartbeat } from './membership'
import type { RedisPair } from './redis'
import { Requests } from './requests'
import { NO_CONNECTIONS, type Cluster, type LocalConnections, type ViewAnswer, type ViewQuery } from './seam'
import type { ClusterNodeInfo } from './types'
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

type Control = Heartbeat | { t: 'bye', i: string } | Query

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
  private readonly beatMs: number
  private local: LocalConnections = NO_CONNECTIONS
  private timer: NodeJS.Timeout | null = null
  private stopped = false

  constructor (pair: RedisPair, private readonly settings: ClusterSettings, private readonly log: FastifyBaseLogger, nodeDown: (node: ClusterNodeInfo) => void) {
    // Heartbeats four times per nodeTimeout; a node three beats silent is gone: known within nodeTimeout.
    this.beatMs = Math.max(50, Math.floor(settings.nodeTimeout / 4))
    this.link = new RedisLink(pair, this.instance, log, () => { this.tick() })
    this.channels = new Channels(settings.prefix)
    this.membership = new Membership(settings.nodeTimeout - this.beatMs)
    this.requests = new Requests(settings.requestTimeout)
    this.ids = new Leases(this.link, this.channels, settings.prefix, this.instance, settings.nodeTimeout, log)
    const parts: NodeParts = { instance: this.instance, link: this.link, channels: this.channels, leases: this.ids, membership: this.membership, requests: this.requests, log }
    this.remote = new Operations(parts)
    this.heartbeats = new Heartbeats(parts, settings.nodeTimeout, nodeDown)
    this.views = new Views(parts)
  }

  /** Connects, takes a slot and starts beating; rejects with a typed error if Redis cannot be reached in time. */
  async start (local: LocalConnections): Promise<void> {
    this.local = local
    this.remote.serve(local)
    try {
      await this.link.connect(this.settings.connectTimeout, async () => {
        await this.ids.take()
        await this.link.subscriber.subscribe(this.channels.control)
      })
    } catch (err) {
      this.stopped = true
      throw err
    }
    this.link.subscriber.on('messageBuffer', this.onMessage)
    this.timer = setInterval(this.tick, this.beatMs).unref()
    this.heartbeats.beat(this.local.size)
    this.log.info({ instance: this.instance, ...leaseOf(this.ids.currentPrefix) }, 'fastify-sip-ws: cluster node up')
  }

  /** Leaves: says so, so the others need not wait for silence, and frees the slot. */
  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    if (this.timer !== null) clearInterval(this.timer)
    this.requests.fail(null, new ClusterUnavailableError('the node is closing'))
    this.link.subscriber.off('messageBuffer', this.onMessage)
    await this.link.close(async () => {
      await this.link.commands.publish(this.channels.control, JSON.stringify({ t: 'bye', i: this.instance })).catch(() => {})
      await this.ids.release().catch(() => {})
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

  /** Renews the lease and beats while Redis is up; sweeps silent nodes. Also run at once when Redis is back. */
  private readonly tick = (): void => {
    if (this.stopped) return
    if (this.link.ready) {
      this.ids.renew()
      this.heartbeats.beat(this.local.size)
    }
    this.heartbeats.sweep(Date.now())
  }

  private readonly onMessage = (channel: Buffer, message: Buffer): void => {
    if (channel.length === this.channels.control.length && channel.toString() === this.channels.control) {
      this.onControl(message)
      return
    }
    const decoded = decode(message)
    if (decoded === null) return
    if ('op' in decoded) this.remote.perform(decoded)
    else this.requests.answered(decoded)
  }

  private onControl (message: Buffer): void {
    let control: Control
    try {
      control = JSON.parse(message.toString()) as Control
    } catch {
      return
    }
    if (control === null || typeof control !== 'object') return
    if (control.t === 'hb') this.heartbeats.heard(control)
    else if (control.t === 'bye') this.heartbeats.left(control.i)
    else if (control.t === 'q') this.views.answer(control, this.local)
  }
}
