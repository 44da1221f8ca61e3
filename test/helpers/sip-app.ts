import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import type { SipWsOptions } from '../../lib'
import { connectionLocal, type ConnectionLocal } from '../../example/proxy/connection-local'
import { RawSipClient } from '../e2e/helpers'
import { startApp, type Started } from './server'

/** What takes a SIP connection's events: the example's proxy, or a part of it under test. */
export interface SipHandler {
  message: (id: number, data: string | Buffer) => void | Promise<void>
  /** Absent: the connection's local side is recorded in `connections`. */
  opened?: (id: number, local: ConnectionLocal) => void
  /** Absent: the connection's local side is removed from `connections`. */
  closed?: (id: number) => void
}

export interface SipApp extends Started {
  /** The open connections' local sides, as the example's proxy keeps them. */
  connections: Map<number, ConnectionLocal>
  /** A bare SIP-over-WebSocket client, connected; closed by `close()`. */
  client: (user: string) => Promise<RawSipClient>
  close: () => Promise<void>
}

/**
 * A real server with the plugin on 127.0.0.1 whose `websocket:*` hooks feed what `build` returns, as the
 * example's server.ts feeds its proxy: for tests of the example's SIP parts with real WebSocket clients.
 */
export async function startSipApp (
  build: (app: FastifyInstance, connections: Map<number, ConnectionLocal>) => SipHandler | Promise<SipHandler>,
  options: SipWsOptions = {},
  fastifyOptions: FastifyServerOptions = { logger: false }
): Promise<SipApp> {
  const connections = new Map<number, ConnectionLocal>()
  const clients: RawSipClient[] = []
  const started = await startApp({ subProtocols: ['sip'], ...options }, async (app) => {
    const handler = await build(app, connections)
    app.addWsHook('websocket:open', (event) => {
      const local = connectionLocal(event)
      if (handler.opened !== undefined) handler.opened(event.id, local)
      else connections.set(event.id, local)
    })
    app.addWsHook('websocket:message', (message) => handler.message(message.id, message.data))
    app.addWsHook('websocket:closed', (event) => {
      if (handler.closed !== undefined) handler.closed(event.id)
      else connections.delete(event.id)
    })
  }, fastifyOptions)
  return {
    ...started,
    connections,
    client: async (user) => {
      const client = await RawSipClient.connect(started.url, user)
      clients.push(client)
      return client
    },
    close: async () => {
      await Promise.all(clients.map(async (c) => { await c.close() }))
      await started.app.close()
    }
  }
}
