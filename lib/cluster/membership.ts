import type { ClusterNodeInfo } from './types'

/** What a heartbeat carries. */
export interface Heartbeat {
  t: 'hb'
  i: string
  s: number
  p: number[]
  h: string
  pid: number
  c: number
}

/**
 * The live nodes and which lease prefixes each serves, so a remote id's owner is known without asking Redis.
 * A node is gone once it has been silent for `silenceMs`; the caller sweeps, and only while it could have
 * heard heartbeats itself (its own Redis connection up long enough), so a Redis outage never reads as every
 * other node dying.
 */
export class Membership {
  private readonly nodes = new Map<string, ClusterNodeInfo>()
  private readonly byPrefix = new Map<number, ClusterNodeInfo>()

  constructor (private readonly silenceMs: number) {}

  /** A heartbeat arrived; true when it is from a node not known before. */
  heard (beat: Heartbeat, now: number): ClusterNodeInfo | null {
    let node = this.nodes.get(beat.i)
    const fresh = node === undefined
    if (node === undefined) {
      node = { instance: beat.i, slot: beat.s, prefixes: [], host: beat.h, pid: beat.pid, connections: beat.c, lastSeen: now, self: false }
      this.nodes.set(beat.i, node)
    }
    for (const prefix of node.prefixes) if (this.byPrefix.get(prefix) === node) this.byPrefix.delete(prefix)
    node.slot = beat.s
    node.prefixes = beat.p
    node.connections = beat.c
    node.lastSeen = now
    for (const prefix of beat.p) this.byPrefix.set(prefix, node)
    return fresh ? node : null
  }

  /** Takes a node out (it left, or went silent); returns it if it was known. */
  remove (instance: string): ClusterNodeInfo | null {
    const node = this.nodes.get(instance)
    if (node === undefined) return null
    this.nodes.delete(instance)
    for (const prefix of node.prefixes) if (this.byPrefix.get(prefix) === node) this.byPrefix.delete(prefix)
    return node
  }

  /** Nodes silent for longer than allowed: removed, and returned for the caller to announce. */
  sweep (now: number): ClusterNodeInfo[] {
    const gone: ClusterNodeInfo[] = []
    for (const node of this.nodes.values()) if (now - node.lastSeen > this.silenceMs) gone.push(node)
    for (const node of gone) this.remove(node.instance)
    return gone
  }

  /** The live node serving `prefix`, if any. */
  owner (prefix: number): ClusterNodeInfo | undefined {
    return this.byPrefix.get(prefix)
  }

  values (): IterableIterator<ClusterNodeInfo> {
    return this.nodes.values()
  }
}
