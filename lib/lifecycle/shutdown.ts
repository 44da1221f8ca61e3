import type { FastifyInstance } from 'fastify'
import type { IncomingMessage, Server } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Stats } from '../connection/stats'
import { rawResponse, type Refusal } from '../handshake/refusal'
import type { HandshakeTimeout } from '../handshake/timeout'
import type { UpgradeRequests } from '../handshake/upgrade'
import type { Settings } from '../options'
import type { Lifecycle } from './lifecycle'

/**
 * @fastify/websocket stops listening for upgrades in its preClose hook, but the server keeps accepting
 * connections until every preClose hook is done. An upgrade request arriving then (a client that reconnects
 * at once when told Going Away) would be answered by nobody and hold `server.close()` forever. This answers
 * it with `refusal` and closes the socket, unless someone else still listens for upgrades.
 */
function refuseStrayUpgrades (server: Server, ignore: ((req: IncomingMessage) => void) | null, refusal: Refusal, onRefused: () => void): () => void {
  if (server.listeners('upgrade').some((listener) => listener !== ignore)) return () => {}
  const response = rawResponse(refusal)
  const listener = (_req: IncomingMessage, socket: Duplex): void => {
    onRefused()
    socket.on('error', () => { socket.destroy() })
    socket.end(response, () => { socket.destroy() })
  }
  server.on('upgrade', listener)
  return () => { server.off('upgrade', listener) }
}

/** How long a connection without a request head may still take to send one once shutdown begins. */
const REQUEST_GRACE_MS = 500

export interface ShutdownParts {
  settings: Settings
  lifecycle: Lifecycle
  stats: Stats
  upgrades: UpgradeRequests
  handshakeTimeout: HandshakeTimeout | null
  /** Closed last, once every `websocket:closed` hook has settled, so a closed hook may still notify. */
  lwsc: { close: () => Promise<void> }
}

/**
 * `app.close()` resolves within about `closeTimeout` + `hookTimeout` whatever peers do: handshakes that
 * arrive meanwhile get 503, requests still in `xhttp:request` hooks get 503, open connections get Close 1001
 * and are terminated past `closeTimeout`, and hooks are waited for up to `hookTimeout`.
 */
export function registerShutdown (app: FastifyInstance, { settings, lifecycle, stats, upgrades, handshakeTimeout, lwsc }: ShutdownParts): void {
  let stopRefusing = (): void => {}
  app.addHook('preClose', async () => {
    upgrades.stopListening()
    const refusal = lifecycle.beginShutdown()
    stopRefusing = refuseStrayUpgrades(app.server, handshakeTimeout?.upgradeListener ?? null, refusal, () => { stats.handshakeFailed() })
    handshakeTimeout?.closing(Math.min(REQUEST_GRACE_MS, settings.closeTimeout))
    upgrades.refusePending(refusal)
    await lifecycle.shutdown()
  })
  app.addHook('onClose', async () => {
    stopRefusing()
    handshakeTimeout?.stop()
    await lwsc.close()
  })
}
