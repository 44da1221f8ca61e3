import type { ChildProcess } from 'node:child_process'

const live = new Set<ChildProcess>()

function killLive (): void {
  for (const child of live) child.kill('SIGTERM')
}

/**
 * Ties a peer process (Kamailio, Redis, sipp, a node) to this test file's process: if the file dies before
 * its `after` hooks stop the peer (the runner's SIGTERM on a timeout, a crash), the peer is told to stop
 * too, instead of living on and holding ports and CPU while the next files run.
 */
export function ownedChild<T extends ChildProcess> (child: T): T {
  install()
  live.add(child)
  child.once('exit', () => { live.delete(child) })
  return child
}

let installed = false
function install (): void {
  if (installed) return
  installed = true
  process.once('exit', killLive)
  for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130], ['SIGHUP', 129]] as const) {
    process.once(signal, () => {
      killLive()
      process.exit(code)
    })
  }
}
