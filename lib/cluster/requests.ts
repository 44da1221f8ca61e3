import { ClusterTimeoutError } from '../errors'
import type { DecodedAnswer } from './wire'

interface Pending {
  /** The lease prefix asked (one node), or -1 for a question to every node. */
  target: number
  timer: NodeJS.Timeout
  settle: (ok: boolean, body: Buffer | null, err?: Error) => void
}

/** A request awaiting its answer from one node. */
export interface OpenRequest {
  id: number
  answer: Promise<{ ok: boolean, body: Buffer | null }>
  /** Ends it before its answer came: resolved not done (nobody to ask), or rejected with `err`. */
  end: (err?: Error) => void
}

/**
 * Requests this node sent and the answers that come back for them, matched by a request number, each
 * bounded by `requestTimeout`. A request to one node settles with its first answer; a question to every
 * node takes answers until its collector says it has them all, or time is up.
 */
export class Requests {
  private readonly pending = new Map<number, Pending>()
  private next = 1

  constructor (private readonly timeoutMs: number) {}

  private number (): number {
    const id = this.next
    this.next = this.next === 0xffffffff ? 1 : this.next + 1
    return id
  }

  /** A request to the node serving `target`; rejects with FST_SIPWS_CLUSTER_TIMEOUT past requestTimeout. */
  open (target: number): OpenRequest {
    const id = this.number()
    let settle: Pending['settle'] = () => {}
    const answer = new Promise<{ ok: boolean, body: Buffer | null }>((resolve, reject) => {
      settle = (ok, body, err) => { if (err !== undefined) reject(err); else resolve({ ok, body }) }
    })
    const timer = setTimeout(() => {
      this.pending.delete(id)
      settle(false, null, new ClusterTimeoutError(this.timeoutMs))
    }, this.timeoutMs)
    this.pending.set(id, { target, timer, settle })
    return { id, answer, end: (err) => { clearTimeout(timer); this.pending.delete(id); settle(false, null, err) } }
  }

  /**
   * A question to every node: `take` gets each answer's body and says whether all are in. Resolves when
   * they are, at requestTimeout, or when the node closes; `send` publishes the question with its number.
   */
  async collect (take: (body: Buffer) => boolean, send: (request: number) => Promise<unknown>): Promise<void> {
    const id = this.number()
    await new Promise<void>((resolve) => {
      const finish = (): void => { clearTimeout(timer); this.pending.delete(id); resolve() }
      const timer = setTimeout(finish, this.timeoutMs)
      this.pending.set(id, {
        target: -1,
        timer,
        settle: (_ok, body, err) => {
          // The node is closing: answer with what came so far.
          if (err !== undefined) finish()
          else if (body !== null && take(body)) finish()
        }
      })
      send(id).catch(finish)
    })
  }

  /** An answer came; false when its request has ended already (timed out, or its node was gone). */
  answered ({ request, ok, body }: DecodedAnswer): boolean {
    const pending = this.pending.get(request)
    if (pending === undefined) return false
    if (pending.target !== -1) {
      clearTimeout(pending.timer)
      this.pending.delete(request)
    }
    pending.settle(ok, body.length === 0 ? null : body)
    return true
  }

  /** Fails every request to a node serving one of `targets` (it is gone), or every request (`null`). */
  fail (targets: ReadonlySet<number> | null, err: Error): void {
    for (const [request, pending] of this.pending) {
      if (targets !== null && !targets.has(pending.target)) continue
      clearTimeout(pending.timer)
      this.pending.delete(request)
      pending.settle(false, null, err)
    }
  }
}
