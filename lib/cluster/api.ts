import { checkClose, checkConnectionId, dumpOrder, payloadError } from '../arguments'
import { CLOSE_NORMAL, CLOSE_REASONS, DUMP_LIMIT } from '../constants'
import type { ConnectionInfo, DumpOrder, StatsSnapshot } from '../types'
import type { Cluster, LocalConnections } from './seam'
import type { ClusterNodeInfo, MissingNode, WsCluster } from './types'

/** Orders merged results the way `wsDump` orders one node's (ids name their node, so id order is global). */
function compare (order: DumpOrder): (a: ConnectionInfo, b: ConnectionInfo) => number {
  if (order === 'id_hash') return (a, b) => a.id - b.id
  if (order === 'used_asc') return (a, b) => b.lastUsed - a.lastUsed
  return (a, b) => a.lastUsed - b.lastUsed
}

const missingOf = (nodes: ClusterNodeInfo[]): MissingNode[] => nodes.map((n) => ({ instance: n.instance, slot: n.slot }))

/**
 * `app.wsCluster`: the same calls whether this process is alone or a node of a cluster. Ids held here answer
 * at once; the others are confirmed by their owner. The checks of the local calls (close codes, say) apply
 * to remote ones too.
 */
export function clusterApi (local: LocalConnections, cluster: Cluster): WsCluster {
  const { remote, instance } = cluster
  return {
    instance,
    send: async (id, data) => {
      if (local.has(id)) return local.send(id, data)
      const bad = payloadError(data)
      if (bad !== null) throw bad
      return await remote.confirmSend(id, data)
    },
    close: async (id, status = CLOSE_NORMAL, reason = CLOSE_REASONS[CLOSE_NORMAL]) => {
      if (local.has(id)) return local.closeById(id, status, reason)
      checkConnectionId(id, 'wsCluster.close')
      checkClose(status, reason)
      return await remote.confirmClose(id, status, reason)
    },
    ping: async (id) => local.has(id) ? local.ping(id) : await remote.confirmPing(id),
    pong: async (id) => local.has(id) ? local.pong(id) : await remote.confirmPong(id),
    dump: async (order) => {
      const checked = dumpOrder(order)
      const { connections: mine, wscounter: count } = local.dump(checked)
      const { answers, missing } = await cluster.ask({ q: 'dump', o: checked }, { instance, connections: mine, wscounter: count })
      // Each node's first 50 in this order hold the first 50 of all of them.
      const connections = answers.flatMap((a) => a.connections ?? []).sort(compare(checked)).slice(0, DUMP_LIMIT)
      const wscounter = answers.reduce((n, a) => n + (a.wscounter ?? 0), 0)
      return { connections, wscounter, truncated: wscounter > connections.length, answered: answers.length, missing: missingOf(missing) }
    },
    stats: async () => {
      const { answers, missing } = await cluster.ask({ q: 'stats' }, { instance, stats: local.statistics() })
      const total: Record<string, number> = {}
      const nodes: Record<string, StatsSnapshot> = {}
      for (const { instance: name, stats } of answers) {
        if (stats === undefined) continue
        nodes[name] = stats
        for (const [key, value] of Object.entries(stats)) total[key] = (total[key] ?? 0) + value
      }
      // Every node reports the same counters (custom sub-protocols aside): the sum has the same keys.
      return { total: total as StatsSnapshot, nodes, missing: missingOf(missing) }
    },
    nodes: () => cluster.nodes()
  }
}
