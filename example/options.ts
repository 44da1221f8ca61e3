import type { FastifyServerOptions } from 'fastify'
import { formatSipAddress, parseSipAddress, type SipAddress } from './sip/address'
import { WORKER_INDEX } from './workers'

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
   * `IP:PORT`: the address the core must use to reach the edge, when it is not SIP_LISTEN's (a NAT, a
   * container's published port, a relay): what the edge writes in its Via, Path and Record-Route (env
   * SIP_ADVERTISE, Kamailio's `advertise`). Under WORKERS, worker i advertises PORT + i.
   */
  sipAdvertise?: string
  /**
   * A `redis://` URL (env REDIS_URL): this server becomes a node of the cluster that Redis holds, the
   * plugin's `cluster` option, with the registrar's bindings and the Via and flow-token keys shared there.
   */
  redisUrl?: string
}

/** Where the edge listens for the core when SIP_CORE is set and SIP_LISTEN is not. */
export const DEFAULT_SIP_LISTEN = 'udp:127.0.0.1:5070'

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
    sipAdvertise: workerSipAdvertise(nonEmpty(env.SIP_ADVERTISE), env[WORKER_INDEX]),
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

function workerSipAdvertise (advertise: string | undefined, index: string | undefined): string | undefined {
  if (advertise === undefined || index === undefined || index === '0') return advertise
  const address = parseSipAddress(`udp:${advertise}`, 'sipAdvertise (SIP_ADVERTISE)')
  return formatSipAddress({ ...address, port: address.port + Number(index) }).slice('udp:'.length)
}

function milliseconds (env: NodeJS.ProcessEnv, name: string): number | undefined {
  const text = env[name]
  if (text === undefined || text === '') return undefined
  const value = Number(text)
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a whole number of milliseconds, got ${JSON.stringify(text)}`)
  return value
}

/**
 * The core, the edge's address towards it and the one it advertises (SIP_CORE, SIP_LISTEN,
 * SIP_ADVERTISE), or null with no core. Checked before anything starts: a SIP_LISTEN or SIP_ADVERTISE
 * without SIP_CORE is a mistake, not a setting.
 */
export function sipAddresses (opts: ExampleOptions): { core: SipAddress, listen: SipAddress, advertise: SipAddress | null } | null {
  for (const [value, name] of [[opts.sipListen, 'sipListen (SIP_LISTEN)'], [opts.sipAdvertise, 'sipAdvertise (SIP_ADVERTISE)']] as const) {
    if (value !== undefined && opts.sipCore === undefined) throw new Error(`${name} is the edge's address towards a core: set sipCore (SIP_CORE) too`)
  }
  if (opts.sipCore === undefined) return null
  const core = parseSipAddress(opts.sipCore, 'sipCore (SIP_CORE)')
  const listen = parseSipAddress(opts.sipListen ?? DEFAULT_SIP_LISTEN, 'sipListen (SIP_LISTEN)')
  const advertise = opts.sipAdvertise === undefined ? null : parseSipAddress(`${listen.transport}:${opts.sipAdvertise}`, 'sipAdvertise (SIP_ADVERTISE)')
  return { core, listen, advertise }
}
