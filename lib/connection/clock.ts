/**
 * The time of the message whose hooks are running synchronously, so a reply a sync hook sends (the usual
 * case) reuses it instead of reading the clock a second time for the same message. Set by the socket's
 * message listener around its hooks, and read by sends.
 */
export class FrameClock {
  private current = 0

  /** Date.now() of the message being handled, or a fresh reading outside one. */
  now (): number {
    return this.current !== 0 ? this.current : Date.now()
  }

  begin (now: number): void {
    this.current = now
  }

  end (): void {
    this.current = 0
  }
}
