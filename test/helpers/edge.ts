import fastifyWebsocket from '@fastify/websocket'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { AddressInfo } from 'node:net'
import type { Cluster } from '../../lib/cluster/seam'
import { SingleProcess } from '../../lib/cluster/single-process'
import { buildEdge, type Edge } from '../../lib/edge'
import { Hooks } from '../../lib/hooks'
import { resolveSettings, type Settings, type SipWsOptions } from '../../lib/options'

export interface StartedEdge {
  app: FastifyInstance
  edge: Edge
  hooks: Hooks
  settings: Settings
  cluster: Cluster
  port: number
  url: string
  /** Shuts the edge down (every connection closed, hooks settled), then the app. */
  close: () => Promise<void>
}

/**
 * The parts `buildEdge` makes, on a real Fastify app with @fastify/websocket and listening on 127.0.0.1, wired
 * as the plugin wires its handshake path (the upgrade listener and the `onRequest` hook) and nothing more: no
 * decorators, RPC, metrics or shutdown hooks, so a test reaches each part itself. `setup` runs before listen
 * (to add hooks through `hooks.add`, routes, or Fastify hooks wired to the edge's parts).
 */
export async function startEdge (
  options: SipWsOptions = {},
  setup?: (app: FastifyInstance, hooks: Hooks, edge: Edge, settings: Settings) => void,
  fastifyOptions: FastifyServerOptions = { logger: false },
  cluster: Cluster = new SingleProcess()
): Promise<StartedEdge> {
  const settings = resolveSettings(options)
  const app = Fastify(fastifyOptions)
  await app.register(fastifyWebsocket)
  const hooks = new Hooks(app.log)
  const edge = buildEdge(settings, hooks, cluster, app.log)
  await cluster.start(edge.server)
  edge.upgrades.listen(app.server)
  app.addHook('onRequest', edge.upgrades.onRequest)
  setup?.(app, hooks, edge, settings)
  try {
    await app.listen({ host: '127.0.0.1', port: 0 })
  } catch (err) {
    edge.keepalive.stop()
    throw err
  }
  const { port } = app.server.address() as AddressInfo
  return {
    app,
    edge,
    hooks,
    settings,
    cluster,
    port,
    url: `ws://127.0.0.1:${port}`,
    close: async () => {
      edge.upgrades.stopListening()
      await edge.lifecycle.shutdown()
      await cluster.stop()
      await app.close()
    }
  }
}
