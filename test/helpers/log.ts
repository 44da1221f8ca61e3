import pino, { type Logger } from 'pino'
import type { LogEntry } from './server'

/**
 * A real pino logger (the kind Fastify gives `app.log`) that keeps every entry at `level` and above, for
 * tests of parts that take a logger: `next(match, accept)` resolves with the first entry, logged or to come,
 * whose message includes `match` (and that `accept` accepts); `messages()` lists what was logged, in order.
 */
export function recordedLog (level = 'debug'): { log: Logger, entries: LogEntry[], messages: () => string[], next: (match: string, accept?: (e: LogEntry) => boolean) => Promise<LogEntry> } {
  const entries: LogEntry[] = []
  const waiters: Array<{ match: string, accept: (e: LogEntry) => boolean, resolve: (e: LogEntry) => void }> = []
  const matches = (e: LogEntry, match: string, accept: (e: LogEntry) => boolean): boolean => e.msg?.includes(match) === true && accept(e)
  const log = pino({ level }, {
    write: (line: string) => {
      const entry = JSON.parse(line) as LogEntry
      entries.push(entry)
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (matches(entry, waiters[i].match, waiters[i].accept)) waiters.splice(i, 1)[0].resolve(entry)
      }
    }
  })
  return {
    log,
    entries,
    messages: () => entries.map((e) => e.msg ?? ''),
    next: async (match, accept = () => true) => {
      const seen = entries.find((e) => matches(e, match, accept))
      if (seen !== undefined) return seen
      return await new Promise((resolve) => { waiters.push({ match, accept, resolve }) })
    }
  }
}
