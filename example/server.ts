import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import cluster from 'node:cluster'
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import pino from 'pino'
import sipWs from '../lib'
import { adminAccess } from './admin-access'
import { browserBundle } from './browser-bundle'
import { ClusterLink } from './cluster-link'
import type { ClusterLocations } from './cluster-locations'
import { CoreBridge } from './core-bridge'
import { CoreTransport } from './core-transport'
import { formatSipAddress, parseSipAddress } from './sip-address'
import { SERVER_NAME, SipProxy } from './sip-proxy'
import { runPrimary, WORKER_INDEX, workerCount } from './workers'

export interface ExampleOptions {
  logger?: FastifyServerOptions['logger']
  /** Where each `websocket:closed` event is sent as JSON with `app.lwsc.notify` (env EVENTS_URL). */
  eventsUrl?: string
  /** Origins allowed to open a WebSocket; unset lets any through (env ALLOWED_ORIGINS, comma list). */
  allowedOrigins?: string[]
  /** Host header values allowed, with or without the port; unset lets any through (env ALLOWED_HOSTS). */
  allowedHosts?: string[]
  /** Milliseconds of silence from a client before it is pinged (env KEEPALIVE_TIMEOUT). */
  keepaliveTimeout?: number
  /** Milliseconds over which SIGTERM spreads the closes of open connections (env DRAIN_MS). */
  drainWithin?: number
  /** Bearer token /RPC requires (env RPC_TOKEN); unset, /RPC answers loopback clients only. */
  rpcToken?: string
  /** The SIP core the edge fronts, `udp:IP:PORT` or `tcp:IP:PORT` (env SIP_CORE); unset: no core. */
  sipCore?: string
  /** The edge's own SIP address towards the core (env SIP_LISTEN); port 0 picks one. */
  sipListen?: string
  /**
   * A `redis://` URL (env REDIS_URL): this server becomes a node of the cluster that Redis holds, the
   * plugin's `cluster` option, with the registrar's bindings and the Via and flow-token keys shared there.
   */
  redisUrl?: string
}

/** Where the edge listens for the core when SIP_CORE is set and SIP_LISTEN is not. */
export const DEFAULT_SIP_LISTEN = 'udp:127.0.0.1:5070'

const PUBLIC = join(__dirname, 'public')

// The page loads nothing from elsewhere; the WebSocket goes back to the host that served it.
const PAGE_HEADERS = {
  'content-security-policy': "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-cache'
}

/**
 * The SIP WebSocket edge of the example: page at `/`, SIP over WebSocket at `/`, JSON-RPC at `/RPC` (for
 * loopback clients, or anyone with RPC_TOKEN when it is set).
 */
export async function buildServer (opts: ExampleOptions = {}): Promise<FastifyInstance> {
  if (opts.sipListen !== undefined && opts.sipCore === undefined) throw new Error('sipListen (SIP_LISTEN) is the edge\'s address towards a core: set sipCore (SIP_CORE) too')
  const core = opts.sipCore === undefined ? undefined : parseSipAddress(opts.sipCore, 'sipCore (SIP_CORE)')
  const listen = core === undefined ? undefined : parseSipAddress(opts.sipListen ?? DEFAULT_SIP_LISTEN, 'sipListen (SIP_LISTEN)')
  const app = Fastify({ logger: opts.logger ?? false })
  const link = opts.redisUrl === undefined ? undefined : await ClusterLink.open(opts.redisUrl)
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

  // app.wsSend takes any node's connection id; for another node's it is one publish through Redis.
  const proxy = new SipProxy({ send: (id, text) => app.wsSend(id, text), log: app.log, secret: link?.keys.via })
  let locations: ClusterLocations | undefined
  if (link !== undefined) {
    locations = link.locations(app)
    proxy.attachCluster(locations)
    link.attach(app, proxy, locations)
  }
  if (core !== undefined && listen !== undefined) {
    let bridge: CoreBridge | undefined
    const transport = new CoreTransport({ listen, log: app.log, onMessage: (data, source) => { bridge?.fromCore(data, source) } })
    bridge = new CoreBridge({
      core,
      transport,
      via: proxy.via,
      tokenKey: link?.keys.flowTokens ?? randomBytes(32),
      registrar: proxy.registrar,
      connection: (id) => proxy.connection(id),
      sendWs: (id, text) => app.wsSend(id, text),
      log: app.log,
      serverName: SERVER_NAME,
      cluster: locations
    })
    proxy.attachCore(bridge)
    try {
      await transport.start()
    } catch (err) {
      await app.close()
      throw err
    }
    app.addHook('onClose', async () => { await transport.close() })
    app.log.info({ core: formatSipAddress(core), listen: formatSipAddress(transport.local) }, 'sip edge: bridging WebSocket clients to the core')
  }

  app.addWsHook('xhttp:request', handshakeGate(opts.allowedHosts, opts.allowedOrigins))
  app.addWsHook('rpc:request', adminAccess(opts.rpcToken))
  app.addWsHook('websocket:open', (event) => {
    proxy.opened(event.id, {
      localAddress: event.localAddress,
      localPort: event.localPort,
      host: event.request.headers.host,
      secure: event.request.protocol === 'https'
    })
  })
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

  const [indexHtml, styleCss] = await Promise.all([
    readFile(join(PUBLIC, 'index.html'), 'utf8'),
    readFile(join(PUBLIC, 'style.css'), 'utf8')
  ])
  // A GET without Upgrade on the WebSocket path reaches these routes (see the plugin's README).
  app.get('/', async (_request, reply) => await reply.headers(PAGE_HEADERS).type('text/html; charset=utf-8').send(indexHtml))
  app.get('/style.css', async (_request, reply) => await reply.headers(PAGE_HEADERS).type('text/css; charset=utf-8').send(styleCss))
  app.get('/app.js', async (_request, reply) => await reply.headers(PAGE_HEADERS).type('text/javascript; charset=utf-8').send(await browserBundle()))

  return app
}

/**
 * Kamailio's sample `event_route[xhttp:request]`: a WebSocket handshake must name a Host (one of ours when
 * a list is given) and, when origins are listed, come from one of them. A browser always sends Origin, so
 * a handshake without one is refused too once a list is set.
 */
function handshakeGate (allowedHosts: string[] | undefined, allowedOrigins: string[] | undefined) {
  const hosts = allowedHosts === undefined ? null : new Set(allowedHosts.map((h) => h.toLowerCase()))
  const origins = allowedOrigins === undefined ? null : new Set(allowedOrigins.map((o) => o.replace(/\/+$/, '').toLowerCase()))
  return async function gate (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const host = request.headers.host
    if (host === undefined || host === '' || (hosts !== null && !hosts.has(host.toLowerCase()) && !hosts.has(hostName(host)))) {
      request.log.warn({ host }, 'websocket refused: bad Host')
      await reply.code(403).type('text/plain; charset=utf-8').send('Forbidden')
      return
    }
    const origin = request.headers.origin
    if (origins !== null && (origin === undefined || !origins.has(origin.toLowerCase()))) {
      request.log.warn({ origin }, 'websocket refused: origin not allowed')
      await reply.code(403).type('text/plain; charset=utf-8').send('Forbidden')
    }
  }
}

/** `example.com:8080` → `example.com`, `[::1]:8080` → `[::1]`. */
function hostName (host: string): string {
  return host.toLowerCase().replace(/:\d+$/, '')
}

function list (value: string | undefined): string[] | undefined {
  if (value === undefined || value.trim() === '') return undefined
  return value.split(',').map((item) => item.trim()).filter((item) => item !== '')
}

/** The example's options from the environment (see the README's example section). */
export function optionsFromEnv (env: NodeJS.ProcessEnv): ExampleOptions & { host: string, port: number } {
  const port = Number(env.PORT ?? 8080)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT must be a port number, got ${JSON.stringify(env.PORT)}`)
  const keepalive = milliseconds(env, 'KEEPALIVE_TIMEOUT')
  const drain = milliseconds(env, 'DRAIN_MS')
  const sipCore = nonEmpty(env.SIP_CORE)
  const redisUrl = nonEmpty(env.REDIS_URL)
  if (redisUrl !== undefined && !/^rediss?:\/\//.test(redisUrl)) throw new Error(`REDIS_URL must be a redis:// or rediss:// URL, got ${JSON.stringify(redisUrl)}`)
  return {
    host: env.HOST ?? '127.0.0.1',
    port,
    logger: { level: env.LOG_LEVEL ?? 'info' },
    eventsUrl: env.EVENTS_URL === undefined || env.EVENTS_URL === '' ? undefined : env.EVENTS_URL,
    allowedOrigins: list(env.ALLOWED_ORIGINS),
    allowedHosts: list(env.ALLOWED_HOSTS),
    keepaliveTimeout: keepalive,
    drainWithin: drain,
    rpcToken: env.RPC_TOKEN === undefined || env.RPC_TOKEN === '' ? undefined : env.RPC_TOKEN,
    sipCore,
    sipListen: workerSipListen(nonEmpty(env.SIP_LISTEN) ?? (sipCore === undefined ? undefined : DEFAULT_SIP_LISTEN), env[WORKER_INDEX]),
    redisUrl
  }
}

function nonEmpty (value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value
}

/**
 * Under WORKERS, worker i listens towards the core on SIP_LISTEN's port + i (port 0: each picks its own),
 * so the core reaches each worker at the address its Path names: retransmissions and TCP connections
 * stay with the worker that holds the client's connection.
 */
function workerSipListen (listen: string | undefined, index: string | undefined): string | undefined {
  if (listen === undefined || index === undefined || index === '0') return listen
  const address = parseSipAddress(listen, 'sipListen (SIP_LISTEN)')
  return address.port === 0 ? listen : formatSipAddress({ ...address, port: address.port + Number(index) })
}

function milliseconds (env: NodeJS.ProcessEnv, name: string): number | undefined {
  const text = env[name]
  if (text === undefined || text === '') return undefined
  const value = Number(text)
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a whole number of milliseconds, got ${JSON.stringify(text)}`)
  return value
}

/**
 * SIGTERM (a rolling restart, `kill`, a container stop) drains first: new handshakes get 503 so the load
 * balancer sends clients elsewhere, open ones are closed over `drainWithin` ms, then the server closes.
 * SIGINT, or a second signal, closes at once.
 */
function stopOnSignals (app: FastifyInstance, drainWithin: number): void {
  let stopping = false
  const stop = (signal: NodeJS.Signals): void => {
    const drain = signal === 'SIGTERM' && !stopping
    if (stopping && !drain) app.log.warn({ signal }, 'closing now')
    stopping = true
    app.log.info({ signal, drainWithin: drain ? drainWithin : 0 }, drain ? 'draining, then shutting down' : 'shutting down')
    const done = drain ? app.wsDrain({ within: drainWithin }).then(async () => { await app.close() }) : app.close()
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
  const app = await buildServer(options)
  stopOnSignals(app, drainWithin ?? 5000)
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
