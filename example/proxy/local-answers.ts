import type { SipRequest } from '../sip/message'
import { topVia } from '../sip/via'
import { Recent } from './recent'

/** 64 × T1: how long the ACK for a final answer may take to come (RFC 3261 §17.2.1 Timer H). */
const LIFETIME_MS = 64 * 500

/**
 * The INVITEs the edge answered itself with a final error (400, 404, 408, 430, 483...). The ACK for a
 * non-2xx answer goes to whoever made the answer (RFC 3261 §17.1.1.3: it is hop by hop, with the INVITE's
 * branch), so the edge takes those ACKs in instead of routing them on like an end-to-end ACK.
 */
export class LocalAnswers {
  private readonly keys: Recent<true>

  constructor (maxEntries = 10000, now: () => number = Date.now) {
    this.keys = new Recent(LIFETIME_MS, maxEntries, now)
  }

  /** The key of an INVITE or its ACK that came from `source` (a connection id, or a peer): the top Via's branch and sent-by. */
  static key (source: string, request: SipRequest): string | null {
    const via = topVia(request)
    const branch = via?.params.get('branch')
    if (via === null || branch === undefined || branch === null) return null
    return `${source}\n${branch}\n${via.host}:${via.port ?? ''}`
  }

  /** The edge sent a final error for this INVITE. */
  answered (key: string | null): void {
    if (key !== null) this.keys.set(key, true)
  }

  /** Whether an ACK answers one of the edge's own final errors. */
  has (key: string | null): boolean {
    return key !== null && this.keys.get(key) === true
  }
}
