import { ClusterUnavailableError } from '../errors'
import type { WsData } from '../types'
import { idPrefix } from './ids'
import { NO_CONNECTIONS, type LocalConnections, type RemoteConnections } from './seam'
import { CLOSE, closeBody, encode, encodeAnswer, PING, PONG, SEND_BINARY, SEND_TEXT, type Decoded, type Operation } from './wire'
import type { NodeParts } from './parts'
import type { OpenRequest } from './requests'

const sendOp = (data: WsData): Operation => typeof data === 'string' ? SEND_TEXT : SEND_BINARY

/**
 * Operations on connections across nodes: those this node sends for other nodes' ids (one publish to the
 * owner's lease channel each, in order with every other publish of this node), and those other nodes send
 * for this node's ids, carried out on its own connections.
 */
export class Operations implements RemoteConnections {
  private local: LocalConnections = NO_CONNECTIONS

  constructor (private readonly parts: NodeParts) {}

  /** From now on, operations for this node's ids are carried out on `local`. */
  serve (local: LocalConnections): void {
    this.local = local
  }

  send (id: number, data: WsData): boolean {
    return this.forward(sendOp(data), id, data)
  }

  close (id: number, code: number, reason: string): boolean {
    return this.forward(CLOSE, id, closeBody(code, reason))
  }

  ping (id: number): boolean {
    return this.forward(PING, id, null)
  }

  pong (id: number): boolean {
    return this.forward(PONG, id, null)
  }

  async confirmSend (id: number, data: WsData): Promise<boolean> {
    return await this.confirm(sendOp(data), id, data)
  }

  async confirmClose (id: number, code: number, reason: string): Promise<boolean> {
    return await this.confirm(CLOSE, id, closeBody(code, reason))
  }

  async confirmPing (id: number): Promise<boolean> {
    return await this.confirm(PING, id, null)
  }

  async confirmPong (id: number): Promise<boolean> {
    return await this.confirm(PONG, id, null)
  }

  /** Why an operation on an id under `prefix` goes to no node, or null when it is published to the lease's channel. */
  private refusal (prefix: number): string | null {
    if (prefix < 0) return 'not a connection id'
    if (this.parts.leases.serves(prefix)) return 'not open here, on the node that made the id'
    // Redis confirmed its node gone; a node merely not heard of yet is no reason: it is published to.
    if (this.parts.membership.gone(prefix)) return 'its node is gone'
    return null
  }

  private refused (id: number, op: Operation, why: string): false {
    this.parts.log.debug({ id, op, why }, 'fastify-sip-ws: cluster: operation refused')
    return false
  }

  /** A plain operation published, then lost: the caller was told it was on its way, so this is logged. */
  private dropped (id: number, op: Operation, why: string): void {
    this.parts.log.warn({ id, op, why }, 'fastify-sip-ws: cluster: operation for another node dropped')
  }

  /**
   * True when the operation is on its way to the id's node (Redis up; a node not known here yet is no
   * reason to refuse), false otherwise; one that turns out to reach nobody is logged. The confirmed
   * variants wait for the owner to say.
   */
  private forward (op: Operation, id: number, body: string | Uint8Array | null): boolean {
    const prefix = idPrefix(id)
    const refused = this.refusal(prefix) ?? (this.parts.link.ready ? null : 'Redis is not connected')
    if (refused !== null) return this.refused(id, op, refused)
    this.parts.link.commands.publish(this.parts.channels.of(prefix), encode(op, id, 0, 0, body)).then((receivers) => {
      if (receivers === 0) this.dropped(id, op, 'no node subscribes to its lease')
    }, (err: unknown) => { this.dropped(id, op, `publish failed: ${(err as Error).message}`) })
    return true
  }

  private async confirm (op: Operation, id: number, body: string | Uint8Array | null): Promise<boolean> {
    const prefix = idPrefix(id)
    const refused = this.refusal(prefix)
    if (refused !== null) return this.refused(id, op, refused)
    if (!this.parts.link.ready) throw new ClusterUnavailableError('Redis is not connected')
    const request = this.parts.requests.open(prefix)
    // The answer is awaited at once, not after the publish: a stalled Redis (its socket open, nothing
    // answered) holds the publish, and requestTimeout must still end the call.
    this.parts.link.commands.publish(this.parts.channels.of(prefix), encode(op, id, request.id, this.parts.leases.currentPrefix, body)).then((receivers) => {
      if (receivers === 0) this.unheard(id, op, prefix, request)
    }, (err: unknown) => { request.end(new ClusterUnavailableError((err as Error).message)) })
    return (await request.answer).ok
  }

  /**
   * Nobody subscribes to the lease's channel: no node holds the id, unless Redis says the lease is still
   * served (its node is resubscribing after an outage) or may not know yet (this node came back to Redis
   * less than nodeTimeout ago, and Redis may have come back empty): then the outcome is unknown.
   */
  private unheard (id: number, op: Operation, prefix: number, request: OpenRequest): void {
    const fresh = Date.now() - this.parts.link.backSince < this.parts.nodeTimeout
    this.parts.leases.presence.served(prefix).then((served) => {
      if (!served && !fresh) {
        this.refused(id, op, 'no node serves its lease')
        request.end()
      } else {
        request.end(new ClusterUnavailableError(`no node subscribes to the lease of id ${id} right now, and Redis ${served ? 'says it is served' : 'may not know yet'}`))
      }
    }, (err: unknown) => { request.end(new ClusterUnavailableError((err as Error).message)) })
  }

  /** An operation another node sent for one of our connections; answered when it asked for an answer. */
  perform ({ op, id, request, replyTo, body }: Decoded): void {
    let ok = false
    let logged = false
    try {
      if (op === SEND_TEXT) ok = this.local.send(id, body.toString())
      else if (op === SEND_BINARY) ok = this.local.send(id, body)
      else if (op === CLOSE) ok = body.length >= 2 && this.local.closeById(id, body.readUInt16BE(0), body.subarray(2).toString())
      else if (op === PING) ok = this.local.ping(id)
      else if (op === PONG) ok = this.local.pong(id)
    } catch (err) {
      this.parts.log.warn({ err, id, op }, 'fastify-sip-ws: cluster: remote operation refused')
      logged = true
    }
    if (request === 0) {
      // The sender was told the operation was on its way: not carried out, it must not vanish unlogged.
      if (!ok && !logged) this.parts.log.warn({ id, op }, 'fastify-sip-ws: cluster: operation from another node dropped: no such connection open here')
      return
    }
    this.parts.link.commands.publish(this.parts.channels.of(replyTo), encodeAnswer(request, ok)).catch((err: unknown) => {
      this.parts.log.debug({ err, id, request }, 'fastify-sip-ws: cluster: answer not sent; the asking node times out')
    })
  }
}
