import type { SipPeer } from '../sip/address'

/** RFC 3261 §17.1.1.1 timer values, in milliseconds: T1 the round-trip estimate, T2 the longest interval. */
export interface SipTimers {
  t1: number
  t2: number
}

export const DEFAULT_TIMERS: SipTimers = { t1: 500, t2: 4000 }

/** RFC 3261 §16.6 step 11: how long a proxy waits for a final answer once an INVITE is ringing (Timer C, > 3 min). */
const TIMER_C_MS = 181_000

interface Pending {
  invite: boolean
  bytes: Buffer
  target: SipPeer
  interval: number
  retransmit: NodeJS.Timeout | null
  timeout: NodeJS.Timeout
  onTimeout: () => void
}

/**
 * The edge's client transactions towards the core (RFC 3261 §17.1, §16.6 step 10), for the requests it
 * relays there from WebSocket clients. A WebSocket client does not retransmit over its reliable
 * transport, so over UDP the edge does:
 *
 * - INVITE: Timer A, from T1 doubling, until any response; Timer B (64×T1) without one: 408. Once it
 *   rings, Timer C (3 min) bounds the wait for a final answer.
 * - any other request but ACK: Timer E, from T1 doubling up to T2 (at T2 once a provisional came),
 *   until a final response; Timer F (64×T1): 408.
 *
 * Over TCP only Timers B, F and C run. Responses still go back statelessly by Via: the transactions only
 * watch them pass (`responded`) to stop retransmitting. A 408 goes through `onTimeout` (RFC 3261 §16.8:
 * the proxy answers as if the core had sent it).
 */
export class ClientTransactions {
  private readonly pending = new Map<string, Pending>()

  constructor (
    private readonly send: (bytes: Buffer, target: SipPeer) => void,
    private readonly timers: SipTimers = DEFAULT_TIMERS,
    private readonly maxPending = 10000
  ) {}

  /** Tracks a request just sent, by the branch of the edge's Via and its method; false when too many are pending. */
  start (branch: string, method: string, bytes: Buffer, target: SipPeer, onTimeout: () => void): boolean {
    if (method === 'ACK') return true
    if (this.pending.size >= this.maxPending) return false
    const key = `${branch}\n${method}`
    this.stop(key)
    const { t1 } = this.timers
    const entry: Pending = {
      invite: method === 'INVITE',
      bytes,
      target,
      interval: t1,
      retransmit: null,
      timeout: setTimeout(() => { this.expire(key) }, 64 * t1),
      onTimeout
    }
    this.pending.set(key, entry)
    if (target.transport === 'udp') this.schedule(key, entry)
    return true
  }

  /**
   * A response from the core for the edge's Via `branch` and CSeq method: retransmissions stop (an
   * INVITE's on any response; another request's slow to T2 on a provisional), a final one ends the
   * transaction. Whether it matched one that was pending.
   */
  responded (branch: string, method: string, status: number): boolean {
    const key = `${branch}\n${method}`
    const entry = this.pending.get(key)
    if (entry === undefined) return false
    if (status >= 200) {
      this.stop(key)
      return true
    }
    if (entry.invite) {
      if (entry.retransmit !== null) clearTimeout(entry.retransmit)
      entry.retransmit = null
      clearTimeout(entry.timeout)
      entry.timeout = setTimeout(() => { this.expire(key) }, TIMER_C_MS)
    } else {
      entry.interval = this.timers.t2
    }
    return true
  }

  get size (): number {
    return this.pending.size
  }

  /** Every timer stopped (the edge closes). */
  close (): void {
    for (const key of [...this.pending.keys()]) this.stop(key)
  }

  private schedule (key: string, entry: Pending): void {
    entry.retransmit = setTimeout(() => {
      if (this.pending.get(key) !== entry) return
      this.send(entry.bytes, entry.target)
      entry.interval = entry.invite ? entry.interval * 2 : Math.min(entry.interval * 2, this.timers.t2)
      this.schedule(key, entry)
    }, entry.interval)
  }

  private expire (key: string): void {
    const entry = this.pending.get(key)
    if (entry === undefined) return
    this.stop(key)
    entry.onTimeout()
  }

  private stop (key: string): void {
    const entry = this.pending.get(key)
    if (entry === undefined) return
    if (entry.retransmit !== null) clearTimeout(entry.retransmit)
    clearTimeout(entry.timeout)
    this.pending.delete(key)
  }
}
