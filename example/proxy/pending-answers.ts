/** What a connection sent us last, and when something last went to it after that. */
interface Exchange {
  /** When its last message reached the proxy (ms). */
  heardAt: number
  /** When its last request that expects an answer (not an ACK) did. */
  askedAt: number
  /** The latest moment something is known to have gone to it after its last message. */
  answeredAt: number
}

/**
 * Which connections may still be owed an answer, so a drain does not close one before its answer is out
 * (its client would fail the request: JsSIP does at once). A request is answered once a frame goes to its
 * connection afterwards. Answers from other nodes reach the connection through the plugin, unseen here,
 * so that is read from the plugin's `lastUsed` (the last frame either way): later than the last message
 * the connection sent, it says a frame went to it since. Wrong only on the safe side: a frame it sends
 * right after hides the evidence until the next one goes to it, or the drain's bound.
 */
export class PendingAnswers {
  private readonly exchanges = new Map<number, Exchange>()

  /** A message from the connection reached the proxy; `asks`: a request that expects an answer. */
  heard (id: number, asks: boolean, now = Date.now()): void {
    const exchange = this.exchanges.get(id)
    if (exchange === undefined) {
      this.exchanges.set(id, { heardAt: now, askedAt: asks ? now : -1, answeredAt: -1 })
      return
    }
    exchange.heardAt = now
    if (asks) exchange.askedAt = now
  }

  /**
   * Whether its last request may still be unanswered, given the plugin's `lastUsed` for it. `sentOnAt`:
   * when a request of it was last sent on from where it waited (parking), which asks again.
   */
  awaits (id: number, lastUsed: number, sentOnAt = -1): boolean {
    const exchange = this.exchanges.get(id)
    if (exchange === undefined) return false
    if (lastUsed > exchange.heardAt) exchange.answeredAt = Math.max(exchange.answeredAt, lastUsed)
    const askedAt = Math.max(exchange.askedAt, sentOnAt)
    return askedAt >= 0 && askedAt >= exchange.answeredAt
  }

  /** Whether the last frame over the connection (the plugin's `lastUsed`) went to it, not from it. */
  lastWentTo (id: number, lastUsed: number): boolean {
    const exchange = this.exchanges.get(id)
    return exchange === undefined || lastUsed > exchange.heardAt
  }

  closed (id: number): void {
    this.exchanges.delete(id)
  }
}
