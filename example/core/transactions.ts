import { parseCSeq } from '../sip/headers'
import type { SipMessage } from '../sip/message'
import { topVia } from '../sip/via'
import { Recent } from '../proxy/recent'

/** 64 × T1: how long a UDP peer may retransmit a request (RFC 3261 §17.1.1.2 Timer B, §17.1.2.2 Timer F). */
const LIFETIME_MS = 64 * 500

interface Entry {
  /** The last response sent back for the request, resent when the request is retransmitted. */
  response: Buffer | null
}

/**
 * What the edge remembers of the requests the core sent it over UDP, so a retransmission is absorbed
 * instead of reaching the browser as a second request: it is answered with the last response sent for it,
 * as a server transaction would (RFC 3261 §17.2.1, §17.2.2), or dropped when there is none yet. Requests
 * are matched as RFC 3261 §17.2.3 does (branch, sent-by, method), an ACK apart from its INVITE.
 */
export class CoreTransactions {
  private readonly entries: Recent<Entry>

  constructor (maxEntries = 10000, now: () => number = Date.now) {
    this.entries = new Recent(LIFETIME_MS, maxEntries, now)
  }

  /** The key of the transaction a request, or a response to it, belongs to; null when the Via is unusable. */
  static key (message: SipMessage): string | null {
    const via = topVia(message)
    const branch = via?.params.get('branch')
    const cseq = parseCSeq(message.get('cseq') ?? '')
    if (via === null || branch === undefined || branch === null || cseq === null) return null
    return `${branch}\n${via.host}:${via.port ?? 5060}\n${cseq.method}`
  }

  /** True the first time a request is seen; afterwards the entry for its retransmissions. */
  begin (key: string): true | Entry {
    const entry = this.entries.get(key)
    if (entry !== undefined) return entry
    this.entries.set(key, { response: null })
    return true
  }

  answered (key: string, response: Buffer): void {
    const entry = this.entries.get(key)
    if (entry !== undefined) entry.response = response
  }

  get size (): number {
    return this.entries.size
  }
}
