/** A load generator process (bench/load.ts), driven over IPC. */
import { type ChildProcess, fork } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { LoadCommand, LoadResult } from './load'

export class Loader {
  private constructor (private readonly child: ChildProcess) {}

  static async start (): Promise<Loader> {
    const child = fork(join(__dirname, 'load.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    await Promise.race([once(child, 'message'), once(child, 'exit').then(([code]) => { throw new Error(`the load generator exited (${String(code)}) before it was ready`) })])
    return new Loader(child)
  }

  get pid (): number {
    return this.child.pid ?? 0
  }

  /** Runs one command; `onMark` hears when the measured window opens ('start') and closes ('end'). */
  async run (command: LoadCommand, onMark?: (mark: 'start' | 'end') => void): Promise<LoadResult> {
    return await new Promise((resolve, reject) => {
      const onMessage = (m: { mark?: 'start' | 'end', result?: LoadResult, error?: string }): void => {
        if (m.mark !== undefined) { onMark?.(m.mark); return }
        this.child.off('message', onMessage)
        if (m.result !== undefined) resolve(m.result)
        else reject(new Error(m.error))
      }
      this.child.on('message', onMessage)
      this.child.send(command)
    })
  }

  /** Lets an `exact` command go on past its window mark. */
  go (): void {
    this.child.send({ cmd: 'go' })
  }

  stop (): void { this.child.kill() }
}

/**
 * Runs a bench script's body with one load generator and a temp dir, both gone afterwards. A failure is
 * printed and sets the exit code.
 */
export function withLoader (prefix: string, body: (loader: Loader, dir: string) => Promise<void>): void {
  void (async () => {
    const dir = await mkdtemp(join(tmpdir(), prefix))
    const loader = await Loader.start()
    try {
      await body(loader, dir)
    } finally {
      loader.stop()
      await rm(dir, { recursive: true, force: true })
    }
  })().catch((err: unknown) => {
    process.stderr.write(`${String((err as Error).stack ?? err)}\n`)
    process.exitCode = 1
  })
}
