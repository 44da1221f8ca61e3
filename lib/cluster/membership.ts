import { prefixOf } from './ids'
import type { Holder } from './lease'
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

/** Prefixes of nodes Redis confirmed gone are kept this long, at most. */
const BURIED_MAX = 4096

/**
 * The live nodes as this node knows them: a hint, not the truth, which is in Redis (presence.ts). A node
 * is known from its heartbeats, or from its slot lease read at start; one silent for `silenceMs` is only a
 * candidate for gone, which the caller checks in Redis before it removes it. The lease prefixes of nodes
 * Redis confirmed gone are remembered, so sends to their ids are refused, until such a node beats again.
 */
export class Membership {
  private readonly nodes = new Map<string, ClusterNodeInfo>()
  private readonly buried = new Set<number>()

  constructor (private readonly silenceMs: number) {}

  /** A heartbeat arrived; returns the node when it was not known before. */
  heard (beat: Heartbeat, now: number): ClusterNodeInfo | null {
    let node = this.nodes.get(beat.i)
    const fresh = node === undefined
    if (node === undefined) {
      node = { instance: beat.i, slot: beat.s, prefixes: [], host: beat.h, pid: beat.pid, connections: beat.c, lastSeen: now, self: false }
      this.nodes.set(beat.i, node)
    }
    node.slot = beat.s
    node.prefixes = beat.p
    node.host = beat.h
    node.pid = beat.pid
    node.connections = beat.c
    node.lastSeen = now
    for (const prefix of beat.p) this.buried.delete(prefix)
    return fresh ? node : null
  }

  /**
   * The slot holders Redis listed when this node started, other than `self`: known from now on, as if they
   * had just beaten (their host and pid stay unknown, '' and 0, until they do).
   */
  learned (holders: readonly Holder[], self: string, now: number): void {
    for (const holder of holders) {
      if (holder.instance === self || this.nodes.has(holder.instance)) continue
      const prefix = prefixOf(holder)
      this.nodes.set(holder.instance, { instance: holder.instance, slot: holder.slot, prefixes: [prefix], host: '', pid: 0, connections: 0, lastSeen: now, self: false })
      this.buried.delete(prefix)
    }
  }

  get (instance: string): ClusterNodeInfo | undefined {
    return this.nodes.get(instance)
  }

  /** Takes a node out, its prefixes reaching nobody from now on; returns it if it was known. */
  remove (instance: string): ClusterNodeInfo | null {
    const node = this.nodes.get(instance)
    if (node === undefined) return null
    this.nodes.delete(instance)
    if (this.buried.size + node.prefixes.length > BURIED_MAX) this.buried.clear()
    for (const prefix of node.prefixes) this.buried.add(prefix)
    return node
  }

  /** Nodes silent for longer than allowed: candidates for gone, left in place. */
  silent (now: number): ClusterNodeInfo[] {
    return [...this.nodes.values()].filter((node) => now - node.lastSeen > this.silenceMs)
  }

  /** Whether `prefix` was served by a node Redis confirmed gone (and that has not beaten since). */
  gone (prefix: number): boolean {
    return this.buried.has(prefix)
  }

  values (): IterableIterator<ClusterNodeInfo> {
    return this.nodes.values()
  }
}
