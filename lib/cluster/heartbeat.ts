import { hostname } from 'node:os'
import { ClusterNodeGoneError } from '../errors'
import type { Heartbeat } from './membership'
import type { NodeParts } from './parts'
import type { ClusterNodeInfo } from './types'

/**
 * The node's heartbeats, and what it learns from the others': who is up, who left, who went silent. A node
 * gone takes its requests with it (they fail with FST_SIPWS_CLUSTER_NODE_GONE) and is announced once.
 */
export class Heartbeats {
  constructor (
    private readonly parts: NodeParts,
    private readonly nodeTimeout: number,
    private readonly nodeDown: (node: ClusterNodeInfo) => void
  ) {}

  /** Tells the others this node is here, which leases it serves and how many connections it holds. */
  beat (connections: number): void {
    const beat: Heartbeat = { t: 'hb', i: this.parts.instance, s: this.parts.leases.slot, p: this.parts.leases.prefixes(), h: hostname(), pid: process.pid, c: connections }
    this.parts.link.commands.publish(this.parts.channels.control, JSON.stringify(beat)).catch(() => {})
  }

  /** Nodes silent for too long are gone; silence means something only if we were up long enough to hear them. */
  sweep (now: number): void {
    const upSince = this.parts.link.upSince
    if (upSince === 0 || now - upSince < this.nodeTimeout) return
    for (const node of this.parts.membership.sweep(now)) this.gone(node, 'silent')
  }

  /** Another node's heartbeat. */
  heard (beat: Heartbeat): void {
    // Only our nodes write here, but a bad message must cost nothing more than itself.
    if (beat.i === this.parts.instance || typeof beat.i !== 'string' || !Array.isArray(beat.p) || !beat.p.every(Number.isSafeInteger)) return
    const fresh = this.parts.membership.heard(beat, Date.now())
    if (fresh !== null) this.parts.log.info({ instance: fresh.instance, slot: fresh.slot }, 'fastify-sip-ws: cluster: node up')
  }

  /** Another node said goodbye. */
  left (instance: string): void {
    if (instance === this.parts.instance) return
    const node = this.parts.membership.remove(instance)
    if (node !== null) this.gone(node, 'left')
  }

  private gone (node: ClusterNodeInfo, why: 'silent' | 'left'): void {
    this.parts.log.warn({ instance: node.instance, slot: node.slot, why }, 'fastify-sip-ws: cluster: node gone')
    this.parts.requests.fail(new Set(node.prefixes), new ClusterNodeGoneError(node.instance))
    this.nodeDown({ ...node })
  }
}
