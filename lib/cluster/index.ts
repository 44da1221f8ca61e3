import type { FastifyInstance } from 'fastify'
import { CLOSE_NORMAL, CLOSE_REASONS } from '../constants'
import type { Hooks } from '../hooks'
import type { ConnectionInfo, DumpOrder } from '../registry'
import { DUMP_LIMIT, DUMP_ORDERS } from '../registry'
import { BadDumpOrderError } from '../errors'
import { checkConnectionId, payloadError } from '../payload'
import { checkClose, type WsServer } from '../server'
import type { StatsSnapshot } from '../stats'
import { ClusterNode, type ClusterSettings, type ViewAnswer } from './node'
import { redisPair } from './redis'
import type { ClusterNodeInfo, MissingNode, RedisSource, WsCluster } from './types'
import { CLOSE, closeBody, PING, PONG, SEND_BINARY, SEND_TEXT } from './wire'


export interface ClusterOptions extends Omit<ClusterSettings, 'prefix'> {
  redis: RedisSource
  prefix: string
}

/** Orders merged results the way `wsDump` orders one node's (ids name their node, so id order is global). */
function compare (order: DumpOrder): (a: ConnectionInfo, b: ConnectionInfo) => number {
  if (order === 'id_hash') return (a, b) => a.id - b.id
  if (order === 'used_asc') return (a, b) => b.lastUsed - a.lastUsed
  return (a, b) => a.lastUsed - b.lastUsed
}

const missingOf = (nodes: ClusterNodeInfo[]): MissingNode[] => nodes.map((n) => ({ instance: n.instance, slot: n.slot }))

/**
 * Makes this process a node of the cluster: ids from leases, remote ids routed through Redis, the
 * `cluster:node-down` hook. Resolves once the node holds a slot.
 */
export async function startCluster (app: FastifyInstance, options: ClusterOptions, server: WsServer, hooks: Hooks): Promise<WsCluster> {
  const { redis: source, ...settings } = options
  const node = new ClusterNode(redisPair(source), settings, server, app.log, (gone) => { void hooks.notify('cluster:node-down', gone, server.settings.hookTimeout) })
  await node.start()
  server.registry.ids = node
  server.remote = {
    send: (id, data) => node.forward(typeof data === 'string' ? SEND_TEXT : SEND_BINARY, id, data),
    close: (id, code, reason) => node.forward(CLOSE, id, closeBody(code, reason)),
    ping: (id) => node.forward(PING, id, null),
    pong: (id) => node.forward(PONG, id, null)
  }
  app.addHook('onClose', async () => { await node.stop() })
  return clusterApi(server, node)
}

/**
 * `app.wsCluster`. With cluster mode off it is this process alone (`node` null): the same calls work, so
 * code written for a cluster runs on one process unchanged. Local ids answer at once; the checks of the
 * local calls (close codes, say) apply to remote ones too.
 */
export function clusterApi (server: WsServer, node: ClusterNode | null): WsCluster {
  const local = (id: number): boolean => node === null || server.registry.get(id) !== undefined
  const self = (): ClusterNodeInfo => ({ instance: `local-${process.pid}`, slot: -1, prefixes: [], host: '', pid: process.pid, connections: server.registry.size, lastSeen: Date.now(), self: true })
  const ask = async (query: { q: 'dump', o: DumpOrder } | { q: 'stats' }, answer: ViewAnswer): Promise<{ answers: ViewAnswer[], missing: ClusterNodeInfo[] }> =>
    node === null ? { answers: [answer], missing: [] } : await node.ask(query, answer)
  const instance = node?.instance ?? self().instance
  return {
    instance,
    send: async (id, data) => {
      if (local(id)) return server.send(id, data)
      const bad = payloadError(data)
      if (bad !== null) throw bad
      return await node!.confirm(typeof data === 'string' ? SEND_TEXT : SEND_BINARY, id, data)
    },
    close: async (id, status = CLOSE_NORMAL, reason = CLOSE_REASONS[CLOSE_NORMAL]) => {
      if (local(id)) return server.closeById(id, status, reason)
      checkConnectionId(id, 'wsCluster.close')
      checkClose(status, reason)
      return await node!.confirm(CLOSE, id, closeBody(status, reason))
    },
    ping: async (id) => local(id) ? server.ping(id) : await node!.confirm(PING, id, null),
    pong: async (id) => local(id) ? server.pong(id) : await node!.confirm(PONG, id, null),
    dump: async (order = 'id_hash') => {
      if (!DUMP_ORDERS.includes(order)) throw new BadDumpOrderError(String(order))
      const { connections: mine, wscounter: count } = server.dump(order)
      const { answers, missing } = await ask({ q: 'dump', o: order }, { instance, connections: mine, wscounter: count })
      // Each node's first 50 in this order hold the first 50 of all of them.
      const connections = answers.flatMap((a) => a.connections ?? []).sort(compare(order)).slice(0, DUMP_LIMIT)
      const wscounter = answers.reduce((n, a) => n + (a.wscounter ?? 0), 0)
      return { connections, wscounter, truncated: wscounter > connections.length, answered: answers.length, missing: missingOf(missing) }
    },
    stats: async () => {
      const { answers, missing } = await ask({ q: 'stats' }, { instance, stats: server.statistics() })
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
    nodes: () => node === null ? [self()] : node.nodes()
  }
}
