import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { InvalidOptionError } from './errors'
import { SERVER_NAME, SUB_PROTOCOL_BITS, TOKEN_PATTERN as TOKEN } from './constants'
import { canonicalOrigin } from './admin/rpc-access'

/** A prom-client `Registry`, typed by shape so the package's types do not need prom-client installed. */
export interface PromRegistryLike {
  registerMetric: (metric: any) => void
  getSingleMetric: (name: string) => unknown
  removeSingleMetric: (name: string) => void
}

const PATH = '^/'
// A host name or IP literal, optionally with a port: what a Host header holds.
const HOST = '^(\\[[0-9A-Fa-f:.]+\\]|[^\\s:/?#@\\[\\]]+)(:[0-9]{1,5})?$'
const HOST_EXPECTED = 'a Host header value, with or without a port ("admin.example.com", "127.0.0.1:8080", "[::1]")'
const ORIGIN_EXPECTED = 'an origin such as "https://admin.example.com" (http or https, a host, an optional port; no path, no wildcard)'

interface DurationBounds {
  min: number
  /** Past this a value can only be a unit mistake too (microseconds, say). */
  max?: number
  /** How a unit mistake is told apart, shown in the error. */
  hint?: string
  /** 0 turns the feature off. */
  off?: boolean
}

/**
 * A duration in milliseconds, as Fastify's own options are. The bounds are where a value stops making sense,
 * so a number meant in Kamailio's unit (seconds, or microseconds for lwsc) fails at register naming the unit
 * instead of running a thousand times too fast or too slow.
 */
const Milliseconds = (def: number, { min, max, hint, off = false }: DurationBounds) => {
  const range = max === undefined ? `at least ${min}` : `${min} to ${max}`
  const expected = `milliseconds${off ? ': 0 (off) or' : ','} ${range}${hint === undefined ? '' : ` (${hint})`}`
  const bounds = max === undefined ? { minimum: min } : { minimum: min, maximum: max }
  return off
    ? Type.Union([Type.Literal(0), Type.Integer(bounds)], { default: def, expected })
    : Type.Integer({ ...bounds, default: def, expected })
}

export const LwscOptionsSchema = Type.Object({
  protocol: Type.String({ pattern: TOKEN, default: 'kmsg', description: 'Sub-protocol offered when none is given (Kamailio `protocol`)' }),
  timeoutInit: Milliseconds(2000, { min: 100, max: 600000, hint: "Kamailio's timeout_init is in microseconds: 2000000 µs is 2000 ms" }),
  timeoutRead: Milliseconds(2000, { min: 100, max: 600000, hint: "Kamailio's timeout_read is in microseconds: 2000000 µs is 2000 ms" }),
  verbosity: Type.Integer({ minimum: 0, maximum: 3, default: 0 }),
  poolSize: Type.Integer({ minimum: 1, maximum: 1024, default: 4, description: 'Open connections per (url, sub-protocol)' }),
  queueSize: Type.Integer({ minimum: 0, default: 1024, description: 'Requests waiting for a free connection per (url, sub-protocol)' }),
  keepaliveInterval: Milliseconds(5000, { min: 100, off: true }),
  idleTimeout: Milliseconds(60000, { min: 100, off: true }),
  maxEndpoints: Type.Integer({ minimum: 1, default: 1024, description: 'Cached (url, sub-protocol) endpoints; past it the least recently used idle one is closed' }),
  reconnectBackoffMin: Milliseconds(100, { min: 1 }),
  reconnectBackoffMax: Milliseconds(2000, { min: 1 }),
  origin: Type.Optional(Type.String()),
  headers: Type.Optional(Type.Record(Type.String(), Type.String())),
  maxPayload: Type.Integer({ minimum: 1, default: 16 * 1024 * 1024 }),
  // TLS options go straight to `tls.connect`; `rejectUnauthorized: false` is the documented unsafe switch.
  tls: Type.Optional(Type.Unsafe<import('node:tls').ConnectionOptions>(Type.Object({}, { additionalProperties: true })))
}, { additionalProperties: false, default: {} })

export const SipWsOptionsSchema = Type.Object({
  path: Type.Union([
    Type.String({ pattern: PATH }),
    Type.Array(Type.String({ pattern: PATH }), { minItems: 1 })
  ], { default: '/', expected: 'a path starting with "/" or a non-empty list of them' }),
  subProtocols: Type.Union([
    Type.Integer({ minimum: 1, maximum: 3 }),
    Type.Array(Type.String({ pattern: TOKEN }), { minItems: 1 })
  ], { default: 3, expected: 'a bitmap 1 (sip), 2 (msrp), 3 (both) or a non-empty list of sub-protocol names' }),
  corsMode: Type.Union([Type.Literal(0), Type.Literal(1), Type.Literal(2)], { default: 0, expected: '0 (none), 1 (any) or 2 (origin)' }),
  keepaliveMechanism: Type.Union([Type.Literal(0), Type.Literal(1), Type.Literal(2)], { default: 1, expected: '0 (none), 1 (Ping) or 2 (Pong)' }),
  keepaliveTimeout: Milliseconds(180000, { min: 1000, hint: "Kamailio's keepalive_timeout is in seconds: 180 s is 180000 ms" }),
  keepaliveInterval: Milliseconds(1000, { min: 100, hint: "Kamailio's keepalive_interval is in seconds: 1 s is 1000 ms" }),
  keepaliveProcesses: Type.Optional(Type.Integer({ minimum: 1 })),
  keepaliveCloseDead: Type.Boolean({ default: true }),
  pingApplicationData: Type.String({ maxLength: 125, default: SERVER_NAME }),
  verboseList: Type.Boolean({ default: false }),
  maxPayload: Type.Integer({ minimum: 1, default: 65536 }),
  closeTimeout: Milliseconds(5000, { min: 100 }),
  handshakeTimeout: Milliseconds(10000, { min: 100, off: true }),
  hookTimeout: Milliseconds(10000, { min: 100 }),
  hookQueueLimit: Type.Integer({ minimum: 0, default: 256 * 1024, expected: 'bytes, 0 or more' }),
  maxConnections: Type.Integer({ minimum: 0, default: 0 }),
  maxConnectionsPerIp: Type.Integer({ minimum: 0, default: 0 }),
  maxBufferedAmount: Type.Integer({ minimum: 0, default: 4 * 1024 * 1024 }),
  rpc: Type.Optional(Type.Object({
    path: Type.String({ pattern: PATH, default: '/RPC' }),
    allowedOrigins: Type.Array(Type.String({ expected: ORIGIN_EXPECTED }), { default: [], expected: `a list of origins, each ${ORIGIN_EXPECTED}` }),
    allowedHosts: Type.Optional(Type.Array(Type.String({ pattern: HOST, expected: HOST_EXPECTED }), { minItems: 1, expected: `a non-empty list, each ${HOST_EXPECTED}` }))
  }, { additionalProperties: false })),
  metrics: Type.Optional(Type.Object({
    registry: Type.Unsafe<PromRegistryLike>(Type.Object({}, { additionalProperties: true })),
    prefix: Type.String({ pattern: '^[a-zA-Z_:][a-zA-Z0-9_:]*$', default: 'websocket_' })
  }, { additionalProperties: false })),
  lwsc: LwscOptionsSchema,
  cluster: Type.Optional(Type.Object({
    // A redis:// URL, ioredis options (Sentinel's among them), or an ioredis client (@fastify/redis's
    // app.redis): passed as given. Sentinel options are checked here, so a typo fails at register, not at
    // the first failover.
    redis: Type.Unsafe<import('./cluster/types').RedisSource>(Type.Union([
      Type.String({ pattern: '^rediss?://' }),
      Type.Object({
        sentinels: Type.Array(Type.Object({ host: Type.String({ minLength: 1 }), port: Type.Integer({ minimum: 1, maximum: 65535 }) }, { additionalProperties: true }), { minItems: 1 }),
        name: Type.String({ minLength: 1 })
      }, { additionalProperties: true }),
      Type.Object({ sentinels: Type.Optional(Type.Never()) }, { additionalProperties: true })
    ], { expected: 'a redis:// URL, ioredis options (for Sentinel: { sentinels: [{ host, port }, ...], name }) or an ioredis client' })),
    prefix: Type.String({ pattern: '^[A-Za-z0-9_.:-]+$', default: 'sipws', expected: 'letters, digits and _.:- (the Redis key and channel prefix)' }),
    nodeTimeout: Milliseconds(3000, { min: 1000, max: 600000 }),
    requestTimeout: Milliseconds(1000, { min: 100, max: 600000 }),
    connectTimeout: Milliseconds(10000, { min: 100, max: 600000 })
  }, { additionalProperties: false }))
}, { additionalProperties: false })

export type SipWsOptionsResolved = Static<typeof SipWsOptionsSchema>
export type LwscOptionsResolved = Static<typeof LwscOptionsSchema>

// Values passed through as they are (a TLS options bag, a prom-client registry) are not made partial.
type DeepPartial<T> = {
  [K in keyof T]?: K extends 'tls' | 'registry' | 'redis' ? T[K]
    : NonNullable<T[K]> extends readonly unknown[] ? T[K]
      : NonNullable<T[K]> extends object ? DeepPartial<NonNullable<T[K]>> : T[K]
}
/** What `register` accepts: every option may be left out and gets its default. */
export type SipWsOptions = DeepPartial<SipWsOptionsResolved>
export type LwscOptions = DeepPartial<LwscOptionsResolved>

/** Options after validation, with the derived values the rest of the code needs. */
export interface Settings extends SipWsOptionsResolved {
  paths: ReadonlySet<string>
  enabledProtocols: readonly string[]
}

/**
 * Fills defaults and validates against the schema. Throws an error whose message names the first bad
 * option, so a typo fails at `register` rather than at the first connection.
 */
export function resolve<T extends TSchema> (schema: T, input: unknown, prefix = ''): Static<T> {
  if (input !== undefined && (input === null || typeof input !== 'object' || Array.isArray(input))) {
    throw new InvalidOptionError(prefix || 'options', 'expected an object')
  }
  const value = Value.Default(schema, structuredCloneOptions(input ?? {}))
  const first = Value.Errors(schema, value).First()
  if (first !== undefined) {
    const name = prefix + first.path.replace(/^\//, '').replace(/\//g, '.')
    const expected = (first.schema as { expected?: string }).expected
    throw new InvalidOptionError(`"${name || 'options'}"`, `${expected !== undefined ? 'expected ' + expected : first.message}, got ${describe(first.value)}`)
  }
  return value as Static<T>
}

/** The lwsc client's options: the schema, then what it cannot say (the backoff bounds' order). */
export function resolveLwscOptions (input: unknown): LwscOptionsResolved {
  return checkLwscOptions(resolve(LwscOptionsSchema, input, 'lwsc.'))
}

/** What the schema cannot say of the lwsc options: one bound against another. */
function checkLwscOptions (options: LwscOptionsResolved): LwscOptionsResolved {
  if (options.reconnectBackoffMax < options.reconnectBackoffMin) {
    throw new InvalidOptionError('"lwsc.reconnectBackoffMax"', 'must not be below lwsc.reconnectBackoffMin')
  }
  return options
}

export function resolveSettings (input: unknown): Settings {
  const options = resolve(SipWsOptionsSchema, input)
  // Every option is checked here, before register starts anything (a cluster's Redis connection, say).
  checkLwscOptions(options.lwsc)
  if (options.rpc !== undefined) options.rpc.allowedOrigins = options.rpc.allowedOrigins.map(originOption)
  // A Ping's payload is at most 125 bytes (RFC 6455 §5.5); the schema can only count characters.
  if (Buffer.byteLength(options.pingApplicationData) > 125) {
    throw new InvalidOptionError('"pingApplicationData"', `expected at most 125 bytes in UTF-8, got ${Buffer.byteLength(options.pingApplicationData)}`)
  }
  return {
    ...options,
    paths: new Set(typeof options.path === 'string' ? [options.path] : options.path),
    enabledProtocols: protocolNames(options.subProtocols)
  }
}

/** The schema checks the type; whether a string is an origin takes a URL parser. */
function originOption (text: string, index: number): string {
  const origin = canonicalOrigin(text)
  if (origin === null) throw new InvalidOptionError(`"rpc.allowedOrigins.${index}"`, `expected ${ORIGIN_EXPECTED}, got ${describe(text)}`)
  return origin
}

/** Kamailio's bitmap (1 sip, 2 msrp) or a list of names, as an ordered list of lower-case names. */
export function protocolNames (subProtocols: number | readonly string[]): string[] {
  if (typeof subProtocols === 'number') {
    return Object.keys(SUB_PROTOCOL_BITS).filter((name) => (subProtocols & SUB_PROTOCOL_BITS[name]) !== 0)
  }
  return [...new Set(subProtocols.map((name) => name.toLowerCase()))]
}

// Value.Default mutates; copy plain data but keep Buffers and other class instances (TLS keys) as they are.
function structuredCloneOptions (input: object): object {
  const copy: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(input)) {
    copy[key] = value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype
      ? structuredCloneOptions(value)
      : value
  }
  return copy
}

function describe (value: unknown): string {
  if (value === undefined) return 'nothing'
  try {
    const text = JSON.stringify(value)
    return text.length > 60 ? text.slice(0, 57) + '...' : text
  } catch {
    return typeof value
  }
}
