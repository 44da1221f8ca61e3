/** What a connection sent us last, and whether something went to it since. */
interface Exchange {
  /** When its last message reached the proxy (ms). */
  heardAt: number
  /** Whether its last request that expects an answer (not an ACK) may still be unanswered. */
  owed: boolean
  /** The latest moment something is known to have gone to it (ms). */
  answeredAt: number
}

/**
 * Which connections may still be owed an answer, so a drain does not close one before its answer is out
 * (its client would fail the request: JsSIP does at once). A request is answered once a frame goes to its
 * connection afterwards. Frames this node sends are told (`sent`); answers from other nodes reach the
 * connection through the plugin, unseen here, so they are read from the plugin's `lastUsed` (the last
 * frame either way): later than the last message the connection sent, it says a frame went to it since.
 * Wrong only on the safe side: a frame it sends right after hides that evidence until the next one goes
 * to it, or the drain's bound.
 */
export class PendingAnswers {
  private readonly exchanges = new Map<number, Exchange>()

  /** A message from the connection reached the proxy; `asks`: a request that expects an answer. */
  heard (id: number, asks: boolean, now = Date.now()): void {
    const exchange = this.exchanges.get(id)
    if (exchange === undefined) {
      this.exchanges.set(id, { heardAt: now, owed: asks, answeredAt: -1 })
      return
    }
    exchange.heardAt = now
    if (asks) exchange.owed = true
  }

  /** This node sent something to the connection (an answer, most likely). */
  sent (id: number, now = Date.now()): void {
    const exchange = this.exchanges.get(id)
    if (exchange === undefined) return
    exchange.owed = false
    exchange.answeredAt = now
  }

  /**
   * Whether its last request may still be unanswered, given the plugin's `lastUsed` for it. `sentOnAt`:
   * when a request of it was last sent on from where it waited (parking): its answer is owed from then.
   */
  awaits (id: number, lastUsed: number, sentOnAt = -1): boolean {
    const exchange = this.exchanges.get(id)
    if (exchange === undefined) return false
    if (lastUsed > exchange.heardAt) {
      exchange.owed = false
      exchange.answeredAt = Math.max(exchange.answeredAt, lastUsed)
    }
    return exchange.owed || sentOnAt >= Math.max(exchange.answeredAt, 0)
  }

  /** Whether the last frame over the connection (the plugin's `lastUsed`) went to it, not from it. */
  lastWentTo (id: number, lastUsed: number): boolean {
    const exchange = this.exchanges.get(id)
    return exchange === undefined || lastUsed > exchange.heardAt || (!exchange.owed && exchange.answeredAt >= exchange.heardAt)
  }

  closed (id: number): void {
    this.exchanges.delete(id)
  }
}
