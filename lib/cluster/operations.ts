import { ClusterUnavailableError } from '../errors'
import type { WsData } from '../types'
import { idPrefix } from './ids'
import { NO_CONNECTIONS, type LocalConnections, type RemoteConnections } from './seam'
import { CLOSE, closeBody, encode, encodeAnswer, PING, PONG, SEND_BINARY, SEND_TEXT, type Decoded, type Operation } from './wire'
import type { NodeParts } from './parts'

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

  /** The live owner's prefix for a remote id, or -1 when the id is ours, no node holds it, or Redis is away. */
  private route (id: number): number {
    const prefix = idPrefix(id)
    if (prefix < 0 || this.parts.leases.serves(prefix) || !this.parts.link.ready) return -1
    return this.parts.membership.owner(prefix) === undefined ? -1 : prefix
  }

  /**
   * True when the id's node is alive and Redis up (the data is on its way), false otherwise; the confirmed
   * variants wait for the owner to say.
   */
  private forward (op: Operation, id: number, body: string | Uint8Array | null): boolean {
    const prefix = this.route(id)
    if (prefix < 0) return false
    this.parts.link.commands.publish(this.parts.channels.of(prefix), encode(op, id, 0, 0, body)).catch((err: unknown) => {
      this.parts.log.debug({ err, id }, 'fastify-sip-ws: cluster: publish failed')
    })
    return true
  }

  private async confirm (op: Operation, id: number, body: string | Uint8Array | null): Promise<boolean> {
    const prefix = idPrefix(id)
    if (prefix < 0 || this.parts.leases.serves(prefix)) return false
    if (!this.parts.link.ready) throw new ClusterUnavailableError('Redis is not connected')
    if (this.parts.membership.owner(prefix) === undefined) return false
    const request = this.parts.requests.open(prefix)
    // The answer is awaited at once, not after the publish: a stalled Redis (its socket open, nothing
    // answered) holds the publish, and requestTimeout must still end the call.
    this.parts.link.commands.publish(this.parts.channels.of(prefix), encode(op, id, request.id, this.parts.leases.currentPrefix, body)).then((receivers) => {
      // Nobody subscribes to that lease any more: its node is gone, whatever the view says yet.
      if (receivers === 0) request.end()
    }, (err: unknown) => { request.end(new ClusterUnavailableError((err as Error).message)) })
    return (await request.answer).ok
  }

  /** An operation another node sent for one of our connections; answered when it asked for an answer. */
  perform ({ op, id, request, replyTo, body }: Decoded): void {
    let ok = false
    try {
      if (op === SEND_TEXT) ok = this.local.send(id, body.toString())
      else if (op === SEND_BINARY) ok = this.local.send(id, body)
      else if (op === CLOSE) ok = body.length >= 2 && this.local.closeById(id, body.readUInt16BE(0), body.subarray(2).toString())
      else if (op === PING) ok = this.local.ping(id)
      else if (op === PONG) ok = this.local.pong(id)
    } catch (err) {
      this.parts.log.warn({ err, id, op }, 'fastify-sip-ws: cluster: remote operation refused')
    }
    if (request !== 0) this.parts.link.commands.publish(this.parts.channels.of(replyTo), encodeAnswer(request, ok)).catch(() => {})
  }
}
