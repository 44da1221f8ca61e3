import type { FastifyBaseLogger } from 'fastify'
import { drainWithin, dumpOrder, isConnectionId } from '../arguments'
import type { WsCluster } from '../cluster/types'
import { dumpLine } from '../connection/registry'
import type { Lifecycle } from '../lifecycle/lifecycle'
import type { WsServer } from '../server'

/**
 * A JSON-RPC fault with Kamailio's own code and text, for answers that are the RPC's and no error of the
 * package's (an id no connection has). Errors the package's calls throw are mapped by `rpc.ts`.
 */
export class RpcFault extends Error {
  constructor (readonly code: number, message: string) { super(message) }
}

export type Method = (params: unknown[]) => unknown

/** Kamailio's `Invalid Parameters`, for a parameter missing or of the wrong type. */
const invalid = (): RpcFault => new RpcFault(500, 'Invalid Parameters')

/** The connection id a method names first; Kamailio takes only an integer, anything else names no connection. */
function connectionId (params: unknown[]): number {
  if (params.length === 0) throw invalid()
  const id = params[0]
  if (!isConnectionId(id)) throw new RpcFault(500, 'Unknown connection ID')
  return id
}

function known (ok: boolean): Record<string, never> {
  if (!ok) throw new RpcFault(500, 'Unknown connection ID')
  return {}
}

export interface RpcParts {
  server: WsServer
  lifecycle: Lifecycle
  cluster: WsCluster
  log: FastifyBaseLogger
}

/** Kamailio's `ws.*` and `stats.get_statistics` methods, and ours beyond them. */
export function rpcMethods ({ server, lifecycle, cluster, log }: RpcParts): Record<string, Method> {
  return {
    'ws.dump': (params) => {
      const { connections, wscounter, truncated } = server.dump(dumpOrder(params[0] ?? 'id_hash'))
      return { connections: connections.map(dumpLine), info: { wscounter, truncated: truncated ? 'yes' : 'no' } }
    },
    'ws.close': (params) => known(server.closeById(connectionId(params))),
    'ws.ping': (params) => known(server.ping(connectionId(params))),
    'ws.pong': (params) => known(server.pong(connectionId(params))),
    'ws.disable': () => { lifecycle.setEnabled(false); return {} },
    // Beyond Kamailio: starts a drain and answers at once with what it will close; `ws.enable` ends it.
    'ws.drain': (params) => {
      let within: number
      try {
        within = drainWithin(params[0] ?? 0)
      } catch {
        throw invalid()
      }
      const connections = server.size
      lifecycle.drain(within).catch((err: unknown) => { log.error({ err }, 'fastify-sip-ws: drain failed') })
      return { connections, within }
    },
    'ws.enable': () => { lifecycle.setEnabled(true); return {} },
    'stats.get_statistics': (params) => statisticsLines(server.statistics(), params.length === 0 ? ['all'] : params),
    ...clusterMethods(cluster)
  }
}

/**
 * Beyond Kamailio: the cluster-wide views and confirmed operations of `app.wsCluster` (one node's own
 * with cluster mode off). Ids are any node's.
 */
function clusterMethods (cluster: WsCluster): Record<string, Method> {
  return {
    'cluster.nodes': () => cluster.nodes(),
    'cluster.dump': async (params) => {
      const { connections, wscounter, truncated, answered, missing } = await cluster.dump(dumpOrder(params[0] ?? 'id_hash'))
      return { connections: connections.map(dumpLine), info: { wscounter, truncated: truncated ? 'yes' : 'no', answered, missing } }
    },
    'cluster.stats': async () => await cluster.stats(),
    'cluster.send': async (params) => {
      const id = connectionId(params)
      if (typeof params[1] !== 'string') throw invalid()
      return { delivered: await cluster.send(id, params[1]) }
    },
    'cluster.close': async (params) => {
      const id = connectionId(params)
      const [, code, reason] = params
      if ((code !== undefined && typeof code !== 'number') || (reason !== undefined && typeof reason !== 'string')) throw invalid()
      return { closed: await cluster.close(id, code, reason) }
    },
    'cluster.ping': async (params) => ({ delivered: await cluster.ping(connectionId(params)) }),
    'cluster.pong': async (params) => ({ delivered: await cluster.pong(connectionId(params)) })
  }
}

/** Kamailio's `stats.get_statistics`: `all`, a group (`websocket:`), or single names, as sorted lines. */
export function statisticsLines (stats: Record<string, number>, selectors: unknown[]): string[] {
  const names = Object.keys(stats).sort()
  const wanted = new Set<string>()
  for (const selector of selectors) {
    if (typeof selector !== 'string') continue
    if (selector === 'all' || selector === 'websocket:') names.forEach((n) => wanted.add(n))
    else {
      const name = selector.startsWith('websocket:') ? selector.slice('websocket:'.length) : selector
      if (name in stats) wanted.add(name)
    }
  }
  return names.filter((n) => wanted.has(n)).map((n) => `websocket:${n} = ${stats[n]}`)
}
