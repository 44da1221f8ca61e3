import type { Connection } from './connection'

/**
 * The message whose hooks are running synchronously: its time and its connection. A reply a sync hook sends
 * (the usual case) reuses both, instead of reading the clock a second time for the same message and looking
 * its connection up again by id. Set by the socket's message listener around its hooks, and read by sends.
 */
export class CurrentMessage {
  private time = 0
  private conn: Connection | null = null

  /** Date.now() of the message being handled, or a fresh reading outside one. */
  now (): number {
    return this.time !== 0 ? this.time : Date.now()
  }

  /**
   * The connection the message came on when it has this id, else null (look it up). It is still registered
   * then: a connection leaves the registry on its socket's close event, never during its own message.
   */
  connection (id: number): Connection | null {
    const conn = this.conn
    return conn !== null && conn.id === id ? conn : null
  }

  begin (now: number, conn: Connection | null = null): void {
    this.time = now
    this.conn = conn
  }

  end (): void {
    this.time = 0
    this.conn = null
  }
}
