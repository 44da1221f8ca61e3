import { isDumpOrder } from '../arguments'
import type { LocalConnections, ViewAnswer, ViewQuery } from './seam'
import type { ClusterNodeInfo } from './types'
import { encodeAnswer } from './wire'
import type { NodeParts } from './parts'

/** A view question on the control channel: `r` is its request number, `to` the asking lease's prefix. */
export type Query = ViewQuery & { t: 'q', r: number, to: number }

// What arrives on Redis is read in the subscriber's message handler, where a throw escapes to the process:
// a question or an answer our nodes would not write is dropped, never trusted.

function isQuery (query: Query): boolean {
  return Number.isInteger(query.r) && query.r > 0 && query.r <= 0xffffffff && Number.isSafeInteger(query.to) &&
    (query.q === 'stats' || (query.q === 'dump' && isDumpOrder(query.o)))
}

function readAnswer (body: Buffer): ViewAnswer | null {
  let answer: unknown
  try {
    answer = JSON.parse(body.toString())
  } catch {
    return null
  }
  const a = answer as ViewAnswer | null
  if (a === null || typeof a !== 'object' || typeof a.instance !== 'string') return null
  if (a.connections !== undefined && !Array.isArray(a.connections)) return null
  if (a.wscounter !== undefined && !Number.isSafeInteger(a.wscounter)) return null
  if (a.stats !== undefined && (a.stats === null || typeof a.stats !== 'object')) return null
  return a
}

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
      const answer = readAnswer(body)
      if (answer === null || !waiting.delete(answer.instance)) return false
      answers.push(answer)
      return waiting.size === 0
    }, async (request) => await this.parts.link.commands.publish(this.parts.channels.control, JSON.stringify({ t: 'q', ...query, r: request, to: this.parts.leases.currentPrefix })))
    return { answers, missing: others.filter((n) => waiting.has(n.instance)) }
  }

  /** Another node's question, answered on its lease's channel. */
  answer (query: Query, local: LocalConnections): void {
    if (!isQuery(query)) {
      this.parts.log.warn({ question: query }, 'fastify-sip-ws: cluster: malformed view question dropped')
      return
    }
    if (query.to === this.parts.leases.currentPrefix) return
    let answer: ViewAnswer
    if (query.q === 'dump') {
      const { connections, wscounter } = local.dump(query.o)
      answer = { instance: this.parts.instance, connections, wscounter }
    } else {
      answer = { instance: this.parts.instance, stats: local.statistics() }
    }
    this.parts.link.commands.publish(this.parts.channels.of(query.to), encodeAnswer(query.r, true, JSON.stringify(answer))).catch((err: unknown) => {
      this.parts.log.debug({ err, request: query.r }, 'fastify-sip-ws: cluster: view answer not sent; the asking node lists this one missing')
    })
  }
}
