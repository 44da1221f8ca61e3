import type { FastifyInstance } from 'fastify'
import type { LogEntry } from './server'

const INFO = 30

/**
 * What is wrong with an edge's log, as the example logs the outcome of each message (proxy/outcome.ts):
 * a message whose handling ended with no outcome at all (a silent drop), or a drop or refusal logged
 * below info, or without the reason, the direction, the method or status, and the Call-ID (a message
 * that could not be read has no Call-ID, and says how many bytes it was, or where it came from).
 */
export function unexplainedDrops (entries: readonly LogEntry[]): string[] {
  const problems: string[] = []
  for (const entry of entries) {
    const line = JSON.stringify(entry).slice(0, 400)
    if (entry.outcome === 'none') {
      problems.push(`a message ended with no outcome: ${line}`)
      continue
    }
    if (entry.outcome !== 'dropped' && entry.outcome !== 'refused') continue
    const missing: string[] = []
    if (entry.level < INFO) missing.push('a level of info or more')
    if (typeof entry.reason !== 'string' || entry.reason === '') missing.push('a reason')
    if (entry.direction !== 'from-ws' && entry.direction !== 'from-core') missing.push('a direction')
    const unread = entry.bytes !== undefined || (typeof entry.reason === 'string' && entry.reason.startsWith('unparsable'))
    if (!unread && entry.method === undefined && entry.status === undefined) missing.push('the method or status')
    if (!unread && !('callId' in entry)) missing.push('the Call-ID (null when the message has none)')
    if (missing.length > 0) problems.push(`a ${String(entry.outcome)} line without ${missing.join(', ')}: ${line}`)
  }
  return problems
}

/** Throws, naming them, when the edge's log has unexplained drops (a test's last check). */
export function assertEveryDropExplained (entries: readonly LogEntry[]): void {
  const problems = unexplainedDrops(entries)
  if (problems.length > 0) throw new Error(`the edge dropped messages without saying why:\n${problems.join('\n')}`)
}

/**
 * Fastify logger options that record what the edge logs at `level` and above (printing it too when
 * EDGE_LOG is set), for an example app the test then watches with `failOnUnexplainedDrops`.
 */
export function edgeLogger (level = 'info'): { logger: { level: string, stream: { write: (line: string) => void } }, entries: LogEntry[] } {
  const entries: LogEntry[] = []
  const print = process.env.EDGE_LOG !== undefined
  return {
    entries,
    logger: {
      level: print ? 'debug' : level,
      stream: {
        write: (line: string) => {
          entries.push(JSON.parse(line) as LogEntry)
          if (print) process.stderr.write(line)
        }
      }
    }
  }
}

/** Makes `app.close()` fail (and with it the test that closes it) when the edge dropped a message without saying why. */
export function failOnUnexplainedDrops (app: FastifyInstance, entries: readonly LogEntry[]): void {
  app.addHook('onClose', async () => { assertEveryDropExplained(entries) })
}
