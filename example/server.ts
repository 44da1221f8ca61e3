import Fastify, { type FastifyInstance } from 'fastify'
import cluster from 'node:cluster'
import { randomBytes } from 'node:crypto'
import pino from 'pino'
import sipWs from '../lib'
import { adminAccess } from './admin-access'
import { browserBundle } from './browser-bundle'
import { ClusterLink } from './cluster/link'
import { CoreBridge } from './core/bridge'
import { Drain } from './drain'
import { handshakeGate } from './handshake-gate'
import { serveHealth } from './health'
import { optionsFromEnv, sipAddresses, type ExampleOptions } from './options'
import { servePage } from './page'
import { connectionLocal, type ConnectionLocal } from './proxy/connection-local'
import { Outcomes } from './proxy/outcome'
import { Parking } from './proxy/parking'
import { ProxyVia } from './proxy/proxy-via'
import { Registrar } from './proxy/registrar'
import { SERVER_NAME, SipProxy } from './proxy/sip-proxy'
import { formatSipAddress } from './sip/address'
import { runPrimary, workerCount } from './workers'

/** Bindings one WebSocket connection may hold. */
const MAX_BINDINGS_PER_CONNECTION = 32

/** The example's server, and the drain SIGTERM runs. */
export interface ExampleNode {
  app: FastifyInstance
  drain: Drain
}

/**
 * The SIP WebSocket edge of the example: page at `/`, SIP over WebSocket at `/`, JSON-RPC at `/RPC` (for
 * loopback clients, or anyone with RPC_TOKEN when it is set), health at `/health`.
 *
 * Built in order, each part given what it uses: the plugin (a cluster node with REDIS_URL), the open
 * connections' local sides, the requests waiting for users moving between nodes, the cluster's
 * locations, the registrar (which writes through to them), the proxy's Via, the bridge to the core (with
 * SIP_CORE), the proxy, which is given the bridge and the locations, and the drain.
 */
export async function buildNode (opts: ExampleOptions = {}): Promise<ExampleNode> {
  const sip = sipAddresses(opts)
  const app = Fastify({ logger: opts.logger ?? false })
  const link = opts.redisUrl === undefined ? null : await ClusterLink.open(opts.redisUrl)
  await registerPlugin(app, link, opts)

  const connections = new Map<number, ConnectionLocal>()
  const parking = new Parking()
  const locations = link?.locations(app, connections, parking) ?? null
  const registrar = new Registrar(MAX_BINDINGS_PER_CONNECTION, Date.now, locations)
  const via = new ProxyVia(link?.keys.via ?? randomBytes(32))
  const outcomes = new Outcomes(app.log)
  // app.wsSend takes any node's connection id; for another node's it is one publish through Redis.
  const send = (id: number, data: string | Buffer): boolean => app.wsSend(id, data)
  const bridge = sip === null
    ? null
    : new CoreBridge({ ...sip, via, tokenKey: link?.keys.flowTokens ?? randomBytes(32), registrar, connections, sendWs: send, log: app.log, serverName: SERVER_NAME, remote: locations, outcomes })
  const proxy = new SipProxy({ send, log: app.log, registrar, via, connections, core: bridge, locations, outcomes, parking })
  const drain = new Drain(app, {
    connections: () => connections.keys(),
    moveOut: (id) => { proxy.moveOut(id) },
    waiting: (id, lastFrameAt) => proxy.awaitsAnswer(id, lastFrameAt),
    lastWentTo: (id, lastFrameAt) => proxy.lastWentTo(id, lastFrameAt),
    giveUp: (id) => { parking.letGo(id) }
  })

  if (link !== null && locations !== null) link.watch(app, locations, registrar)
  if (bridge !== null) await startBridge(app, bridge)
  app.addHook('onClose', async () => { parking.close() })
  addHooks(app, proxy, drain, opts)
  serveHealth(app, () => drain.draining)
  await servePage(app)
  return { app, drain }
}

/** The example's server alone (tests that need no drain). */
export async function buildServer (opts: ExampleOptions = {}): Promise<FastifyInstance> {
  return (await buildNode(opts)).app
}

/** The plugin, as a node of the cluster when there is a link to Redis. */
async function registerPlugin (app: FastifyInstance, link: ClusterLink | null, opts: ExampleOptions): Promise<void> {
  try {
    await app.register(sipWs, {
      path: '/',
      subProtocols: ['sip'],
      corsMode: 0,
      keepaliveTimeout: opts.keepaliveTimeout ?? 30000,
      // No allowedOrigins: no web page may call /RPC. ALLOWED_HOSTS guards it against DNS rebinding too.
      rpc: { path: '/RPC', allowedHosts: opts.allowedHosts },
      cluster: link?.pluginOptions
    })
  } catch (err) {
    link?.close()
    throw err
  }
}

/** Binds the edge's SIP sockets towards the core; a failure closes the app (and its cluster link). */
async function startBridge (app: FastifyInstance, bridge: CoreBridge): Promise<void> {
  try {
    await bridge.start()
  } catch (err) {
    await app.close()
    throw err
  }
  app.addHook('onClose', async () => { await bridge.close() })
  app.log.info({ core: formatSipAddress(bridge.core), listen: formatSipAddress(bridge.local) }, 'sip edge: bridging WebSocket clients to the core')
}

/** The plugin's hooks: the handshake and /RPC gates, and each connection's open, messages and close. */
function addHooks (app: FastifyInstance, proxy: SipProxy, drain: Drain, opts: ExampleOptions): void {
  app.addWsHook('xhttp:request', drain.gate)
  app.addWsHook('xhttp:request', handshakeGate(opts.allowedHosts, opts.allowedOrigins))
  app.addWsHook('rpc:request', adminAccess(opts.rpcToken))
  app.addWsHook('websocket:open', (event) => { proxy.opened(event.id, connectionLocal(event)) })
  // A promise (in a cluster: a lookup in Redis, or a REGISTER's write there) holds the connection's next
  // message until it settles.
  app.addWsHook('websocket:message', (message) => proxy.message(message.id, message.data))
  app.addWsHook('websocket:closed', (event) => {
    proxy.closed(event.id)
    app.log.info({ id: event.id, remoteAddress: event.remoteAddress, remotePort: event.remotePort, code: event.code, reason: event.reason, by: event.by }, 'websocket closed')
    if (opts.eventsUrl !== undefined) {
      // Like Kamailio's `lwsc_notify()` in event_route[websocket:closed]: fire and forget.
      app.lwsc.notify(opts.eventsUrl, JSON.stringify(event)).catch((err: unknown) => {
        app.log.warn({ err, id: event.id, url: opts.eventsUrl }, 'websocket closed: event not sent')
      })
    }
  })
}

/**
 * SIGTERM (a rolling restart, `kill`, a container stop) drains first (drain.ts): new handshakes and the
 * health route get 503 so the load balancer sends clients elsewhere, open connections are closed over
 * `drainWithin` ms, each once its users moved out and it is quiet, then the server closes. SIGINT, or a
 * second signal, closes at once.
 */
function stopOnSignals ({ app, drain }: ExampleNode, drainWithin: number): void {
  let stopping = false
  const stop = (signal: NodeJS.Signals): void => {
    const draining = signal === 'SIGTERM' && !stopping
    if (stopping && !draining) app.log.warn({ signal }, 'closing now')
    stopping = true
    app.log.info({ signal, drainWithin: draining ? drainWithin : 0 }, draining ? 'draining, then shutting down' : 'shutting down')
    const done = draining ? drain.run(drainWithin).then(async () => { await app.close() }) : app.close()
    done.then(() => process.exit(0), (err: unknown) => {
      app.log.error({ err }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

async function main (): Promise<void> {
  const { host, port, drainWithin, ...options } = optionsFromEnv(process.env)
  const workers = workerCount(process.env.WORKERS, options.redisUrl)
  if (workers > 1 && cluster.isPrimary) {
    runPrimary(workers, pino({ level: process.env.LOG_LEVEL ?? 'info' }))
    return
  }
  const node = await buildNode(options)
  const { app } = node
  stopOnSignals(node, drainWithin ?? 5000)
  await app.listen({ host, port })
  const address = app.server.address()
  const shown = address !== null && typeof address === 'object' ? `${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}` : `${host}:${port}`
  app.log.info({ url: `http://${shown}/` }, `open http://${shown}/ in two browser tabs to chat`)
  // Bundle the page's script now, so the first visitor does not wait for it.
  browserBundle().catch((err: unknown) => { app.log.error({ err }, 'building the page script failed') })
}

// A failure before the logger exists (a bad PORT, a plugin option refused) is left unhandled on purpose:
// Node prints it with its stack and exits with status 1.
if (require.main === module) void main()
