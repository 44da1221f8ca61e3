import type { FastifyBaseLogger } from 'fastify'
import type { Cluster } from './cluster/seam'
import { CurrentMessage } from './connection/current-message'
import type { Connection } from './connection/connection'
import { HookDispatcher } from './connection/hook-queue'
import { Keepalive } from './connection/keepalive'
import { Registry } from './connection/registry'
import { Stats } from './connection/stats'
import { CLOSE_GOING_AWAY } from './constants'
import { Acceptor } from './handshake/accept'
import { Admission } from './handshake/admission'
import { UpgradeRequests } from './handshake/upgrade'
import type { Hooks } from './hooks'
import { Lifecycle } from './lifecycle/lifecycle'
import type { Telemetry } from './observe/telemetry'
import type { Settings } from './options'
import { WsServer } from './server'

/** The parts of one WebSocket edge, each built once here and given what it needs. */
export interface Edge {
  registry: Registry
  stats: Stats
  server: WsServer
  keepalive: Keepalive
  lifecycle: Lifecycle
  upgrades: UpgradeRequests
}

/**
 * Builds the edge in dependency order: connections and their bookkeeping first, then the operations on
 * them, then the lifecycle, then the handshake path that admits new ones. Ids and remote ids come from the
 * cluster (one process alone, or a node of a Redis cluster).
 */
export function buildEdge (settings: Settings, hooks: Hooks, cluster: Cluster, log: FastifyBaseLogger, telemetry: Telemetry): Edge {
  const registry = new Registry(cluster.ids)
  const stats = new Stats(settings.enabledProtocols)
  const current = new CurrentMessage()
  const server = new WsServer(settings, registry, stats, cluster.remote, current, log, telemetry)
  const keepalive = new Keepalive({
    mechanism: settings.keepaliveMechanism,
    timeoutMs: settings.keepaliveTimeout,
    intervalMs: settings.keepaliveInterval,
    closeDead: settings.keepaliveCloseDead,
    verbose: settings.verboseList
  }, {
    probe: (conn, now) => { server.probe(conn, now) },
    expire: (conn) => { conn.close('keepalive', CLOSE_GOING_AWAY, 'Keepalive timeout') }
  }, log)
  const dispatcher = new HookDispatcher<Connection>(hooks, { hookTimeout: settings.hookTimeout, queueLimit: settings.hookQueueLimit }, {
    pause: (conn) => {
      log.debug({ id: conn.id, waiting: conn.queue?.waiting, bytes: conn.queue?.cost }, 'fastify-sip-ws: hooks behind; pausing reads')
      conn.socket?.pause()
    },
    resume: (conn) => {
      log.debug({ id: conn.id, waiting: conn.queue?.waiting }, 'fastify-sip-ws: hooks caught up; resuming reads')
      conn.socket?.resume()
    }
  }, log)
  const acceptor = new Acceptor(settings, { registry, stats, keepalive, dispatcher, hooks, current, log, telemetry })
  const lifecycle = new Lifecycle(settings, { server, registry, keepalive, dispatcher, closeUpgrades: () => { acceptor.close() } }, log)
  const admission = new Admission(settings, lifecycle, registry)
  const upgrades = new UpgradeRequests(settings, { hooks, admission, acceptor, stats, telemetry })
  keepalive.start()
  return { registry, stats, server, keepalive, lifecycle, upgrades }
}
