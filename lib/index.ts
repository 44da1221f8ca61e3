// The plugin registers @fastify/websocket, so its decorators (`injectWS`, `websocketServer`) are typed too.
/// <reference types="@fastify/websocket" preserve="true" />
import fastifyWebsocket from '@fastify/websocket'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { registerMetrics } from './admin/metrics'
import { registerRpc } from './admin/rpc'
import { drainWithin } from './arguments'
import { createCluster } from './cluster'
import { clusterApi } from './cluster/api'
import type { WsCluster } from './cluster/types'
import { buildEdge, type Edge } from './edge'
import { checkInternals } from './handshake/internals'
import { HandshakeTimeout } from './handshake/timeout'
import { Hooks, type WsHookMap, type WsHookName } from './hooks'
import { registerShutdown } from './lifecycle/shutdown'
import { LwscClient } from './lwsc'
import { resolveSettings, type SipWsOptions } from './options'
import type { ConnectionInfo, DumpOrder, DumpResult, StatsSnapshot, WsData } from './types'
import type * as errorClasses from './errors'

declare module 'fastify' {
  interface FastifyInstance {
    /** Adds a hook: `xhttp:request`, `websocket:open`, `websocket:message`, `websocket:closed`, `rpc:request`, `cluster:node-down` or `cluster:rejoined`. */
    addWsHook: <K extends WsHookName>(name: K, fn: WsHookMap[K]) => FastifyInstance
    /** Sends a text (string) or binary (Buffer, Uint8Array) message; false for an unknown or closing connection. */
    wsSend: (id: number, data: WsData) => boolean
    /** Starts the close handshake of one connection; false for an unknown or closing one. A missing or non-integer id throws. */
    wsClose: (id: number, status?: number, reason?: string) => boolean
    /** Starts the close handshake of every open connection; returns how many. */
    wsCloseAll: (status?: number, reason?: string) => number
    wsDump: (order?: DumpOrder) => DumpResult
    wsConnection: (id: number) => ConnectionInfo | undefined
    wsPing: (id: number) => boolean
    wsPong: (id: number) => boolean
    wsDisable: () => void
    wsEnable: () => void
    wsStats: () => StatsSnapshot
    /**
     * Takes this node out of service for a rolling restart: new handshakes get 503 with Retry-After, open
     * connections get Close 1001 spread over `within` ms (default 0: all at once). Resolves when none is left
     * and their closed hooks have run. `wsEnable()` ends a drain early.
     */
    wsDrain: (options?: { within?: number }) => Promise<void>
    /**
     * Cluster-wide views and confirmed operations on any node's connections (cluster mode); with cluster
     * mode off, the same calls over this process alone.
     */
    wsCluster: WsCluster
    /** The WebSocket client (Kamailio's lwsc), closed with the app. */
    lwsc: LwscClient
  }
  interface FastifyRequest {
    /** Set by an `xhttp:request` hook to choose the sub-protocol instead of the client's first choice. */
    wsSubProtocol: string | null
  }
}

const plugin: FastifyPluginAsync<SipWsOptions> = async function sipWs (app, options) {
  const settings = resolveSettings(options)
  await checkInternals()
  if (settings.keepaliveProcesses !== undefined) {
    app.log.info({ keepaliveProcesses: settings.keepaliveProcesses }, 'fastify-sip-ws: keepaliveProcesses is ignored: one Node process sweeps every connection')
  }
  // @fastify/websocket routes upgrade requests through Fastify, which is what lets our onRequest hook see
  // them; an app that registered it already keeps its own instance and options.
  if (!app.hasDecorator('websocketServer')) await app.register(fastifyWebsocket)

  const hooks = new Hooks(app.log)
  const cluster = createCluster(settings.cluster, hooks, settings.hookTimeout, app.log)
  const edge = buildEdge(settings, hooks, cluster, app.log)
  decorate(app, hooks, edge, clusterApi(edge.server, cluster))
  // Before any connection: in cluster mode ids come from this node's lease.
  await cluster.start(edge.server)
  app.addHook('onClose', async () => { await cluster.stop() })
  const lwsc = new LwscClient(settings.lwsc, app.log)
  app.decorate('lwsc', lwsc)

  // HTTP/2 has no upgrade handshake, and its sessions multiplex streams over one socket.
  const handshakeTimeout = app.initialConfig.http2 === true
    ? null
    : new HandshakeTimeout(app.server, settings.handshakeTimeout, app.log, () => { edge.stats.handshakeTimedOut() })
  handshakeTimeout?.start()

  edge.upgrades.listen(app.server)
  app.addHook('onRequest', edge.upgrades.onRequest)
  if (settings.rpc !== undefined) await registerRpc(app, settings.rpc, hooks, { server: edge.server, lifecycle: edge.lifecycle, cluster: app.wsCluster, log: app.log })
  if (settings.metrics !== undefined) registerMetrics(app, settings.metrics, () => edge.server.statistics())
  registerShutdown(app, { settings, lifecycle: edge.lifecycle, stats: edge.stats, upgrades: edge.upgrades, handshakeTimeout, lwsc })
}

/** The decorators users call, each one line onto the part that carries it out. */
function decorate (app: FastifyInstance, hooks: Hooks, { server, lifecycle }: Edge, cluster: WsCluster): void {
  app.decorateRequest('wsSubProtocol', null)
  app.decorate('addWsHook', function addWsHook<K extends WsHookName> (this: FastifyInstance, name: K, fn: WsHookMap[K]) {
    hooks.add(this, name, fn)
    return this
  })
  app.decorate('wsSend', (id: number, data: WsData) => server.send(id, data))
  app.decorate('wsClose', (id: number, status?: number, reason?: string) => server.closeById(id, status, reason))
  app.decorate('wsCloseAll', (status?: number, reason?: string) => server.closeAll(status, reason))
  app.decorate('wsDump', (order?: DumpOrder) => server.dump(order))
  app.decorate('wsConnection', (id: number) => server.info(id))
  app.decorate('wsPing', (id: number) => server.ping(id))
  app.decorate('wsPong', (id: number) => server.pong(id))
  app.decorate('wsDisable', () => { lifecycle.setEnabled(false) })
  app.decorate('wsEnable', () => { lifecycle.setEnabled(true) })
  app.decorate('wsStats', () => server.statistics())
  app.decorate('wsDrain', async (options: { within?: number } = {}) => { await lifecycle.drain(drainWithin(options.within ?? 0)) })
  app.decorate('wsCluster', cluster)
}

export const sipWs = fp(plugin, { fastify: '5.x', name: 'fastify-sip-ws' })
export default sipWs

export type { SipWsOptions, LwscOptions } from './options'
export type { WsMessage, WsTextMessage, WsBinaryMessage, WsOpenEvent, WsClosedEvent } from './types'
export type { XhttpRequestHook, WsOpenHook, WsMessageHook, WsClosedHook, WsHookMap, WsHookName } from './hooks'
export type { ConnectionInfo, DumpOrder, DumpResult, ClosedBy, ConnectionState } from './types'
export type { StatsSnapshot } from './types'
export type { WsCluster, ClusterDump, ClusterStats, ClusterNodeInfo, MissingNode, RedisSource, RedisClientLike, RedisSentinelOptions, ClusterRejoinedEvent, RejoinReason } from './cluster/types'
export type { ClusterNodeDownHook, ClusterRejoinedHook } from './hooks'
export type { WsData } from './types'
export * as errors from './errors'
/** The `code` of every error the package throws (`FST_SIPWS_*`), read from the error classes. */
export type SipWsErrorCode = InstanceType<(typeof errorClasses)[keyof typeof errorClasses]>['code']
export { LwscClient } from './lwsc'
export type { LwscLogger, LwscStats, LwscError } from './lwsc'
