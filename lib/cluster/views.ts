import type { NodeParts } from './parts'
import type { LocalConnections, ViewAnswer, ViewQuery } from './seam'
import type { ClusterNodeInfo } from './types'
import { encodeAnswer } from './wire'

/** A view question on the control channel: `r` is its request number, `to` the asking lease's prefix. */
export type Query = ViewQuery & { t: 'q', r: number, to: number }

/** Cluster-wide views (dump, statistics): asked of every live node, and answered for this one. */
export class Views {
  constructor (private readonly parts: NodeParts) {}

  /**
   * Asks every live node (this one answers at once) and collects what they say until all have or
   * `requestTimeout` passes. Returns the answers and the nodes that did not answer in time.
   */
  async ask (query: ViewQuery, local: ViewAnswer): Promise<{ answers: ViewAnswer[], missing: ClusterNodeInfo[] }> {
    const others = [...this.parts.membership.values()]
    const answers: ViewAnswer[] = [local]
    if (others.length === 0) return { answers, missing: [] }
    if (!this.parts.link.ready) return { answers, missing: others }
    const waiting = new Set(others.map((n) => n.instance))
    await this.parts.requests.collect((body) => {
      let answer: ViewAnswer
      try {
        answer = JSON.parse(body.toString()) as ViewAnswer
      } catch {
        return false
      }
      if (!waiting.delete(answer.instance)) return false
      answers.push(answer)
      return waiting.size === 0
    }, async (request) => await this.parts.link.commands.publish(this.parts.channels.control, JSON.stringify({ t: 'q', ...query, r: request, to: this.parts.leases.currentPrefix })))
    return { answers, missing: others.filter((n) => waiting.has(n.instance)) }
  }

  /** Another node's question, answered on its lease's channel. */
  answer (query: Query, local: LocalConnections): void {
    if (query.to === this.parts.leases.currentPrefix) return
    let answer: ViewAnswer
    if (query.q === 'dump') {
      const { connections, wscounter } = local.dump(query.o)
      answer = { instance: this.parts.instance, connections, wscounter }
    } else {
      answer = { instance: this.parts.instance, stats: local.statistics() }
    }
    this.parts.link.commands.publish(this.parts.channels.of(query.to), encodeAnswer(query.r, true, JSON.stringify(answer))).catch(() => {})
  }
}
