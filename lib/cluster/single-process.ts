import type { Cluster, IdSource, LocalConnections, RemoteConnections, ViewAnswer } from './seam'
import { NO_CONNECTIONS } from './seam'
import type { ClusterNodeInfo } from './types'

/** Ids counted from 1 in this process. */
class CountedIds implements IdSource {
  private last = 0

  nextId (): number {
    return ++this.last
  }

  released (): void {}
}

/** No other process holds connections: an id not held here reaches nobody. */
const NOBODY: RemoteConnections = {
  send: () => false,
  close: () => false,
  ping: () => false,
  pong: () => false,
  confirmSend: async () => false,
  confirmClose: async () => false,
  confirmPing: async () => false,
  confirmPong: async () => false
}

/**
 * Cluster mode off: this process alone. `app.wsCluster` works the same over it, so code written for a
 * cluster runs on one process unchanged.
 */
export class SingleProcess implements Cluster {
  readonly instance = `local-${process.pid}`
  readonly ids: IdSource = new CountedIds()
  readonly remote = NOBODY
  private local = NO_CONNECTIONS

  async start (local: LocalConnections): Promise<void> {
    this.local = local
  }

  async stop (): Promise<void> {}

  async ask (_query: unknown, local: ViewAnswer): Promise<{ answers: ViewAnswer[], missing: ClusterNodeInfo[] }> {
    return { answers: [local], missing: [] }
  }

  nodes (): ClusterNodeInfo[] {
    return [{ instance: this.instance, slot: -1, prefixes: [], host: '', pid: process.pid, connections: this.local.size, lastSeen: Date.now(), self: true }]
  }
}
