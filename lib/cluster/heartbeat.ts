import type { FastifyBaseLogger } from 'fastify'
import { hostname } from 'node:os'
import { ClusterNodeGoneError } from '../errors'
import type { Channels } from './channels'
import type { Leases } from './leases'
import type { RedisLink } from './link'
import type { Heartbeat, Membership } from './membership'
import type { Requests } from './requests'
import type { ClusterNodeInfo } from './types'

/**
 * The node's heartbeats, and what it learns from the others': who is up, who left, who went silent. A node
 * gone takes its requests with it (they fail with FST_SIPWS_CLUSTER_NODE_GONE) and is announced once.
 */
export class Heartbeats {
  constructor (
    private readonly link: RedisLink,
    private readonly channels: Channels,
    private readonly leases: Leases,
    private readonly membership: Membership,
    private readonly requests: Requests,
    private readonly instance: string,
    private readonly nodeTimeout: number,
    private readonly log: FastifyBaseLogger,
    private readonly nodeDown: (node: ClusterNodeInfo) => void
  ) {}

  /** Tells the others this node is here, which leases it serves and how many connections it holds. */
  beat (connections: number): void {
    const beat: Heartbeat = { t: 'hb', i: this.instance, s: this.leases.slot, p: this.leases.prefixes(), h: hostname(), pid: process.pid, c: connections }
    this.link.commands.publish(this.channels.control, JSON.stringify(beat)).catch(() => {})
  }

  /** Nodes silent for too long are gone; silence means something only if we were up long enough to hear them. */
  sweep (now: number): void {
    const upSince = this.link.upSince
    if (upSince === 0 || now - upSince < this.nodeTimeout) return
    for (const node of this.membership.sweep(now)) this.gone(node, 'silent')
  }

  /** Another node's heartbeat. */
  heard (beat: Heartbeat): void {
    // Only our nodes write here, but a bad message must cost nothing more than itself.
    if (beat.i === this.instance || typeof beat.i !== 'string' || !Array.isArray(beat.p) || !beat.p.every(Number.isSafeInteger)) return
    const fresh = this.membership.heard(beat, Date.now())
    if (fresh !== null) this.log.info({ instance: fresh.instance, slot: fresh.slot }, 'fastify-sip-ws: cluster: node up')
  }

  /** Another node said goodbye. */
  left (instance: string): void {
    if (instance === this.instance) return
    const node = this.membership.remove(instance)
    if (node !== null) this.gone(node, 'left')
  }

  private gone (node: ClusterNodeInfo, why: 'silent' | 'left'): void {
    this.log.warn({ instance: node.instance, slot: node.slot, why }, 'fastify-sip-ws: cluster: node gone')
    this.requests.fail(new Set(node.prefixes), new ClusterNodeGoneError(node.instance))
    this.nodeDown({ ...node })
  }
}
