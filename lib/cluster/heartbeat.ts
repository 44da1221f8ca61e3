import { hostname } from 'node:os'
import { ClusterNodeGoneError } from '../errors'
import type { Heartbeat } from './membership'
import type { NodeParts } from './parts'
import type { ClusterNodeInfo } from './types'

/**
 * The node's heartbeats, and what it learns from the others': who is up, who left, who went silent. Silence
 * and goodbyes are hints: a node is gone only once Redis confirms it (its presence key is absent, see
 * presence.ts). A node gone takes its requests with it (they fail with FST_SIPWS_CLUSTER_NODE_GONE) and is
 * announced once.
 */
export class Heartbeats {
  /** Nodes being checked in Redis right now. */
  private readonly checking = new Set<string>()
  /** Silent nodes whose presence Redis still holds, warned of once per silence. */
  private readonly warned = new Set<string>()

  constructor (
    private readonly parts: NodeParts,
    private readonly connections: () => number,
    private readonly nodeDown: (node: ClusterNodeInfo) => void
  ) {}

  /** Tells the others this node is here, which leases it serves and how many connections it holds. */
  beat (): void {
    const { instance, leases, link, channels, log } = this.parts
    const beat: Heartbeat = { t: 'hb', i: instance, s: leases.slot, p: leases.prefixes(), h: hostname(), pid: process.pid, c: this.connections() }
    link.commands.publish(channels.control, JSON.stringify(beat)).catch((err: unknown) => {
      log.debug({ err }, 'fastify-sip-ws: cluster: heartbeat not sent')
    })
  }

  /** Silent nodes are checked in Redis; silence means something only if we were up long enough to hear them. */
  sweep (now: number): void {
    const upSince = this.parts.link.upSince
    if (upSince === 0 || now - upSince < this.parts.nodeTimeout) return
    for (const node of this.parts.membership.silent(now)) this.confirm(node, 'silent')
  }

  /** Another node's heartbeat. A node new to us hears from us at once, so it knows us without waiting. */
  heard (beat: Heartbeat): void {
    if (beat.i === this.parts.instance) return
    // Only our nodes write here, but a bad message must cost nothing more than itself.
    if (typeof beat.i !== 'string' || !Array.isArray(beat.p) || !beat.p.every(Number.isSafeInteger)) {
      this.parts.log.warn({ heartbeat: beat }, 'fastify-sip-ws: cluster: malformed heartbeat dropped')
      return
    }
    this.warned.delete(beat.i)
    const fresh = this.parts.membership.heard(beat, Date.now())
    if (fresh === null) return
    this.parts.log.info({ instance: fresh.instance, slot: fresh.slot }, 'fastify-sip-ws: cluster: node up')
    this.beat()
  }

  /** Another node said goodbye: gone once Redis no longer holds its presence (it deletes it before). */
  left (instance: string): void {
    const node = this.parts.membership.get(instance)
    if (node !== undefined) this.confirm(node, 'left')
  }

  /** Asks Redis whether a node that went silent or said goodbye is gone, and announces it once if so. */
  private confirm (node: ClusterNodeInfo, why: 'silent' | 'left'): void {
    const { instance, lastSeen } = node
    if (this.checking.has(instance)) return
    this.checking.add(instance)
    this.parts.leases.presence.alive(instance).then((alive) => {
      // Heard from since, or announced meanwhile: nothing to do.
      if (this.parts.membership.get(instance)?.lastSeen !== lastSeen) return
      if (!alive) {
        this.parts.membership.remove(instance)
        this.gone(node, why)
      } else if (why === 'silent' && !this.warned.has(instance)) {
        this.warned.add(instance)
        this.parts.log.warn({ instance, slot: node.slot, silentMs: Date.now() - lastSeen }, 'fastify-sip-ws: cluster: node silent but its lease is alive; not counted gone')
      }
    }, (err: unknown) => {
      this.parts.log.debug({ err, instance }, 'fastify-sip-ws: cluster: could not check a silent node in Redis; checked again at the next sweep')
    }).finally(() => { this.checking.delete(instance) })
  }

  private gone (node: ClusterNodeInfo, why: 'silent' | 'left'): void {
    this.warned.delete(node.instance)
    this.parts.log.warn({ instance: node.instance, slot: node.slot, why }, 'fastify-sip-ws: cluster: node gone')
    this.parts.requests.fail(new Set(node.prefixes), new ClusterNodeGoneError(node.instance))
    this.nodeDown({ ...node })
  }
}
