import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { within } from './helpers'
import { ownedChild } from '../helpers/children'
import { jsonRpc } from '../helpers/json-rpc'
import { until } from '../helpers/pool'

const ROOT = join(__dirname, '..', '..')

export interface LogLine { msg?: string, url?: string, by?: string, code?: number, pid?: number, [field: string]: unknown }

/** `npm run example` as a real process. */
export interface ExampleProcess {
  child: ChildProcess
  /** `http://127.0.0.1:<port>/` from the first "open http://..." line. */
  url: string
  port: number
  /** Every log line it printed, parsed, in order (a worker's and the primary's together under WORKERS). */
  lines: LogLine[]
  /** Resolves with the first line (printed or to come) that `match` accepts. */
  line: (match: (line: LogLine) => boolean, ms: number, what: string) => Promise<LogLine>
  /** Resolves with the exit code and signal once it has exited. */
  exited: Promise<[number | null, NodeJS.Signals | null]>
  /** Everything it wrote to stderr. */
  stderr: () => string
  /** SIGKILL unless it has exited already, then waits for the exit. */
  kill: () => Promise<void>
}

/** The example (`example/server.ts`) as a process on a free port (PORT=0), with `env`; resolves once it listens. */
export async function runExample (env: Record<string, string>): Promise<ExampleProcess> {
  const child = ownedChild(spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'example', 'server.ts')], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  }))
  const lines: LogLine[] = []
  const waiters: Array<{ match: (line: LogLine) => boolean, resolve: (line: LogLine) => void }> = []
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: LogLine
    try { line = JSON.parse(text) as LogLine } catch { line = { msg: text } }
    lines.push(line)
    for (let i = waiters.length - 1; i >= 0; i--) if (waiters[i].match(line)) waiters.splice(i, 1)[0].resolve(line)
  })
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  const line = async (match: (l: LogLine) => boolean, ms: number, what: string): Promise<LogLine> => {
    const seen = lines.find(match)
    if (seen !== undefined) return seen
    const printed = new Promise<LogLine>((resolve) => { waiters.push({ match, resolve }) })
    const died = exited.then(([code, signal]) => { throw new Error(`the example exited (${String(code ?? signal)}) before ${what}: ${stderr}`) })
    // Exiting later, after the line came, is no failure of this wait.
    died.catch(() => {})
    return await within(ms, what, Promise.race([printed, died]))
  }
  const kill = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  }
  try {
    const { url } = await line((l) => typeof l.url === 'string', 20_000, 'the example to listen')
    return { child, url: url as string, port: Number(new URL(url as string).port), lines, line, exited, stderr: () => stderr, kill }
  } catch (err) {
    await kill()
    throw err
  }
}

/** Resolves once every node lists `count` nodes (RPC `cluster.nodes`): each has heard the others. */
export async function clusterFormed (nodes: ExampleProcess[], count: number, ms = 15_000): Promise<void> {
  await until(async () => {
    const seen = await Promise.all(nodes.map(async (n) => (await jsonRpc<unknown[]>(n.port, 'cluster.nodes').catch(() => [])).length))
    return seen.every((c) => c >= count)
  }, ms, () => `every node to see ${count} nodes`)
}

/**
 * A rolling restart's step: SIGTERM (the example drains), its health route answering 503 meanwhile,
 * exit 0, then the same command again on the same port. Resolves with the new process, listening.
 */
export async function drainAndRestart (node: ExampleProcess, env: Record<string, string>, drainMs: number): Promise<{ next: ExampleProcess, health: number, exitedAfter: number }> {
  const started = performance.now()
  node.child.kill('SIGTERM')
  let health = 0
  await until(async () => {
    health = (await fetch(`${node.url}health`, { signal: AbortSignal.timeout(2000) }).catch(() => null))?.status ?? 0
    return health === 503
  }, drainMs, () => `the draining node's health route to answer 503 (last: ${health})`)
  // The drain, each connection's wait for a quiet moment (example/drain.ts: 5 s at most), and the close.
  const [code, signal] = await within(drainMs + 15_000, 'the drained node to exit', node.exited)
  if (code !== 0) throw new Error(`the drained node exited with ${String(code ?? signal)}: ${node.stderr()}`)
  const exitedAfter = performance.now() - started
  return { next: await runExample({ ...env, PORT: String(node.port) }), health, exitedAfter }
}
