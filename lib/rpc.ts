import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Hooks } from './hooks'
import { drainWithin } from './drain'
import type { SipWsOptionsResolved } from './options'
import { preflight, rpcAccessHook } from './rpc-access'
import type { WsCluster } from './cluster/types'
import { isConnectionId } from './payload'
import { DUMP_ORDERS, dumpLine, type DumpOrder } from './registry'
import type { WsServer } from './server'

/**
 * JSON-RPC 2.0 over HTTP POST with the method names, result shapes, error texts and HTTP statuses of
 * Kamailio's `jsonrpcs` module (observed on 5.6), so a script written against Kamailio's /RPC works
 * unchanged. Beyond Kamailio: batches and notifications follow JSON-RPC 2.0.
 */

interface RpcRequest {
  jsonrpc?: unknown
  method?: unknown
  params?: unknown
  id?: unknown
}

interface RpcError { code: number, message: string }
type RpcResponse = { jsonrpc: '2.0', result: unknown, id: unknown } | { jsonrpc: '2.0', error: RpcError, id: unknown }

class Fault extends Error {
  constructor (readonly code: number, message: string) { super(message) }
}

const PARSE_ERROR: RpcError = { code: -32700, message: 'Parse error' }
const INVALID_REQUEST: RpcError = { code: -32600, message: 'Invalid Request' }

type Method = (params: unknown[]) => unknown
type RpcOptions = NonNullable<SipWsOptionsResolved['rpc']>

export function rpcMethods (server: WsServer, cluster: WsCluster): Record<string, Method> {
  const connectionId = (params: unknown[]): number => {
    if (params.length === 0) throw new Fault(500, 'Invalid Parameters')
    const id = params[0]
    // Kamailio takes only an integer here; anything else names no connection.
    if (!isConnectionId(id)) throw new Fault(500, 'Unknown connection ID')
    return id
  }
  const known = (ok: boolean): Record<string, never> => {
    if (!ok) throw new Fault(500, 'Unknown connection ID')
    return {}
  }
  return {
    'ws.dump': (params) => {
      const order = params[0] ?? 'id_hash'
      if (typeof order !== 'string' || !DUMP_ORDERS.includes(order as never)) throw new Fault(400, 'Bad display order parameter')
      const { connections, wscounter, truncated } = server.dump(order)
      return { connections: connections.map(dumpLine), info: { wscounter, truncated: truncated ? 'yes' : 'no' } }
    },
    'ws.close': (params) => known(server.closeById(connectionId(params))),
    'ws.ping': (params) => known(server.ping(connectionId(params))),
    'ws.pong': (params) => known(server.pong(connectionId(params))),
    'ws.disable': () => { server.setEnabled(false); return {} },
    // Beyond Kamailio: starts a drain and answers at once with what it will close; `ws.enable` ends it.
    'ws.drain': (params) => {
      let within: number
      try {
        within = drainWithin(params[0] ?? 0)
      } catch {
        throw new Fault(500, 'Invalid Parameters')
      }
      const connections = server.registry.size
      server.drain(within).catch((err: unknown) => { server.log.error({ err }, 'fastify-sip-ws: drain failed') })
      return { connections, within }
    },
    'ws.enable': () => { server.setEnabled(true); return {} },
    'stats.get_statistics': (params) => statisticsLines(server.statistics(), params.length === 0 ? ['all'] : params),
    ...clusterMethods(cluster, connectionId)
  }
}

/**
 * Beyond Kamailio: the cluster-wide views and confirmed operations of `app.wsCluster` (one node's own
 * with cluster mode off). Ids are any node's.
 */
function clusterMethods (cluster: WsCluster, connectionId: (params: unknown[]) => number): Record<string, Method> {
  const order = (params: unknown[]): DumpOrder => {
    const value = params[0] ?? 'id_hash'
    if (typeof value !== 'string' || !DUMP_ORDERS.includes(value as never)) throw new Fault(400, 'Bad display order parameter')
    return value as DumpOrder
  }
  return {
    'cluster.nodes': () => cluster.nodes(),
    'cluster.dump': async (params) => {
      const { connections, wscounter, truncated, answered, missing } = await cluster.dump(order(params))
      return { connections: connections.map(dumpLine), info: { wscounter, truncated: truncated ? 'yes' : 'no', answered, missing } }
    },
    'cluster.stats': async () => await cluster.stats(),
    'cluster.send': async (params) => {
      const id = connectionId(params)
      if (typeof params[1] !== 'string') throw new Fault(500, 'Invalid Parameters')
      return { delivered: await cluster.send(id, params[1]) }
    },
    'cluster.close': async (params) => {
      const id = connectionId(params)
      const [, code, reason] = params
      if ((code !== undefined && typeof code !== 'number') || (reason !== undefined && typeof reason !== 'string')) throw new Fault(500, 'Invalid Parameters')
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

async function call (methods: Record<string, Method>, request: unknown): Promise<RpcResponse | null> {
  if (request === null || typeof request !== 'object' || Array.isArray(request)) {
    return { jsonrpc: '2.0', error: INVALID_REQUEST, id: null }
  }
  const { jsonrpc, method, params, id } = request as RpcRequest
  const isNotification = !('id' in request)
  if ((jsonrpc !== undefined && jsonrpc !== '2.0') || typeof method !== 'string' || (params !== undefined && !Array.isArray(params))) {
    return { jsonrpc: '2.0', error: INVALID_REQUEST, id: id ?? null }
  }
  const fn = Object.hasOwn(methods, method) ? methods[method] : undefined
  let response: RpcResponse
  if (fn === undefined) {
    response = { jsonrpc: '2.0', error: { code: -32601, message: 'Method not found' }, id: id ?? null }
  } else {
    try {
      response = { jsonrpc: '2.0', result: await fn(params ?? []), id: id ?? null }
    } catch (err) {
      response = { jsonrpc: '2.0', error: faultOf(err), id: id ?? null }
    }
  }
  return isNotification ? null : response
}

/** A typed error of ours keeps its status and message (a cluster timeout is a 504); anything else is 500. */
function faultOf (err: unknown): RpcError {
  if (err instanceof Fault) return { code: err.code, message: err.message }
  const { code, statusCode, message } = err as { code?: unknown, statusCode?: unknown, message?: unknown }
  if (typeof code === 'string' && code.startsWith('FST_SIPWS_') && typeof statusCode === 'number') return { code: statusCode, message: String(message) }
  return { code: 500, message: 'Internal error' }
}

/** Kamailio answers a fault with its code as the HTTP status, or 500 for JSON-RPC's negative codes. */
function httpStatus (response: RpcResponse): number {
  if (!('error' in response)) return 200
  return response.error.code >= 100 && response.error.code < 600 ? response.error.code : 500
}

export async function handle (methods: Record<string, Method>, body: string): Promise<{ status: number, payload: unknown }> {
  let parsed: unknown
  try {
    parsed = JSON.parse(body)
  } catch {
    return { status: 500, payload: { jsonrpc: '2.0', error: PARSE_ERROR, id: null } }
  }
  if (Array.isArray(parsed)) {
    if (parsed.length === 0) return { status: 500, payload: { jsonrpc: '2.0', error: INVALID_REQUEST, id: null } }
    // In order, one at a time: a batch's calls take effect in the order written.
    const responses: RpcResponse[] = []
    for (const request of parsed) {
      const response = await call(methods, request)
      if (response !== null) responses.push(response)
    }
    return responses.length === 0 ? { status: 204, payload: null } : { status: 200, payload: responses }
  }
  const response = await call(methods, parsed)
  return response === null ? { status: 204, payload: null } : { status: httpStatus(response), payload: response }
}

/**
 * Registers the POST route in its own context so its raw-body parser and its access check do not touch
 * the app's other routes. The preflight route exists only when origins are listed: otherwise no page may
 * call, and OPTIONS gets the app's 404 with no CORS header.
 */
export async function registerRpc (app: FastifyInstance, options: RpcOptions, server: WsServer, hooks: Hooks, cluster: WsCluster): Promise<void> {
  const methods = rpcMethods(server, cluster)
  await app.register(async function sipWsRpc (child) {
    child.removeAllContentTypeParsers()
    child.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => { done(null, body) })
    child.addHook('onRequest', rpcAccessHook(options))
    if (options.allowedOrigins.length > 0) child.options(options.path, preflight)
    child.post(options.path, async (request: FastifyRequest, reply: FastifyReply) => {
      if (await hooks.runRequest('rpc:request', request, reply)) return reply
      const { status, payload } = await handle(methods, typeof request.body === 'string' ? request.body : '')
      if (status === 204) return await reply.code(204).send()
      return await reply.code(status).type('application/json').send(JSON.stringify(payload))
    })
  })
}
