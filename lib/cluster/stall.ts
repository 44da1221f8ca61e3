/**
 * Whether the node's own event loop stalled (a long GC, CPU throttling, SIGSTOP, a VM pause), told by its
 * timer running late. After a stall the timer runs before the socket is read, so the heartbeats that came
 * meanwhile are still unread: judging the others then would count every one of them silent. So a late tick
 * holds the node's judgement until a fence it sends itself on the control channel comes back (Redis sends
 * a subscriber its messages in order: everything sent before the fence has been read), or, if it never
 * does, for a fresh nodeTimeout.
 */
export class StallWatch {
  private last = 0
  /** The fence awaited (0: none). */
  private fence = 0
  private fences = 0
  private holdUntil = 0

  constructor (private readonly intervalMs: number, private readonly nodeTimeout: number) {}

  /**
   * The timer ran at `now`. Returns how long the loop was away since the previous tick when the tick ran
   * late (by more than half an interval), else 0; the caller then sends `fenceNumber` to itself.
   */
  tick (now: number): number {
    const gap = this.last === 0 ? 0 : now - this.last
    this.last = now
    if (gap <= this.intervalMs * 1.5) return 0
    this.fence = ++this.fences
    this.holdUntil = now + this.nodeTimeout
    return gap
  }

  /** The fence to send after a late tick. */
  get fenceNumber (): number {
    return this.fence
  }

  /** A fence of this node's came back. */
  fenced (n: number): void {
    if (n === this.fence) this.fence = 0
  }

  /** Whether the node may judge the others by their silence at `now`. */
  settled (now: number): boolean {
    return this.fence === 0 || now >= this.holdUntil
  }
}
