import { AsyncLocalStorage } from 'node:async_hooks'
import type { FastifyBaseLogger } from 'fastify'
import type { SipMessage } from '../sip/message'

/** Where a message came from: a WebSocket client, or the SIP core. */
export type Direction = 'from-ws' | 'from-core'

/** What a log line says of a message: enough to find it in a trace (Call-ID), and where it came from. */
export interface MessageFacts {
  direction: Direction
  /** Null for a message that has none. */
  callId?: string | null
  method?: string
  status?: number
  [field: string]: unknown
}

/** The facts of a parsed message, plus `extra` (a connection id, the peer it came from). */
export function factsOf (message: SipMessage, direction: Direction, extra: Record<string, unknown> = {}): MessageFacts {
  const kind = message.kind === 'request' ? { method: message.method } : { status: message.status }
  return { direction, callId: message.get('call-id') ?? null, ...kind, ...extra }
}

interface Fate { settled: boolean }

/**
 * The one place that says what became of each message the edge receives. A message is relayed, answered,
 * absorbed (a retransmission, a 100 Trying, an ACK for the edge's own answer), refused (a final answer of
 * the edge's own, logged) or dropped (logged, at info or warn, with Call-ID, method, direction and
 * reason). Sending anything while handling a message counts as an outcome; a handling that ends with none
 * is a bug, logged at error: tests fail on that line.
 *
 * The handling may wait (a cluster look-up): AsyncLocalStorage follows it through its promises, so the
 * sends deep in the relay need no message passed to them.
 */
export class Outcomes {
  private readonly current = new AsyncLocalStorage<Fate>()

  constructor (private readonly log: FastifyBaseLogger) {}

  /** Runs the handling of one message; `describe` names it in the error line if it ends with no outcome. */
  handle (describe: () => Record<string, unknown>, handling: () => void | Promise<void>): void | Promise<void> {
    const fate: Fate = { settled: false }
    const check = (): void => {
      if (!fate.settled) this.log.error({ ...describe(), outcome: 'none' }, 'sip: message left with no outcome')
    }
    const result = this.current.run(fate, handling)
    if (result === undefined) {
      check()
      return
    }
    return result.finally(check)
  }

  /** Something was sent for the message being handled: it, or an answer to it. */
  sent (): void {
    const fate = this.current.getStore()
    if (fate !== undefined) fate.settled = true
  }

  /** Taken in with nothing to send, as the RFC wants (a retransmission, a 100 Trying, an ACK for our answer). */
  absorbed (what: string, facts: MessageFacts): void {
    this.sent()
    this.log.debug({ ...facts, outcome: 'absorbed' }, `sip: ${what} absorbed`)
  }

  /** The message waits (a request parked for a moving user, a response held while Redis is away): what becomes of it is logged when it goes or expires. */
  waiting (what: string, facts: MessageFacts, level: 'debug' | 'info' = 'debug'): void {
    this.sent()
    this.log[level]({ ...facts, outcome: 'waiting' }, `sip: ${what}`)
  }

  /** Nothing goes further: one line naming why. */
  dropped (reason: string, facts: MessageFacts, level: 'info' | 'warn' = 'info'): void {
    this.sent()
    this.log[level]({ ...facts, outcome: 'dropped', reason }, 'sip: message dropped')
  }

  /** The edge answers a request with a final error of its own: one line naming why. */
  refused (status: number, reason: string, facts: MessageFacts): void {
    this.sent()
    this.log.info({ ...facts, outcome: 'refused', answer: status, reason }, 'sip: request refused')
  }
}
