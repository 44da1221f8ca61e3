import type { Connection } from '../connection/connection'

// Closes are started on this beat: fine enough that 1,000 connections over 5 s leave in steps of 4.
const TICK_MS = 20

/**
 * Starts `close` for each connection, spread evenly over `within` ms (all at once for 0), skipping those
 * already leaving, then calls `done`. Returns a function that stops early (and calls `done`).
 */
export function spreadCloses (conns: readonly Connection[], within: number, close: (conn: Connection) => void, done: () => void): () => void {
  const started = performance.now()
  let next = 0
  let timer: NodeJS.Timeout | null = null
  let finished = false
  const finish = (): void => {
    if (finished) return
    finished = true
    if (timer !== null) clearInterval(timer)
    done()
  }
  const step = (): void => {
    const elapsed = performance.now() - started
    const due = within <= 0 || elapsed >= within ? conns.length : Math.ceil(conns.length * elapsed / within)
    while (next < due) {
      const conn = conns[next++]
      if (conn.isOpen) close(conn)
    }
    if (next >= conns.length) finish()
  }
  step()
  if (!finished) timer = setInterval(step, Math.max(1, Math.min(TICK_MS, within)))
  return finish
}
