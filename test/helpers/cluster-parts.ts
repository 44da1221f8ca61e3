// The parts of a cluster node (lib/cluster/), built one by one on a real Redis for the tests of each part,
// and a plain Redis subscriber that plays the other nodes: it hears what a part publishes and answers as a
// node would, or as a broken one would.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import IORedis from 'ioredis'
import pino from 'pino'
import { Channels } from '../../lib/cluster/channels'
import { Leases } from '../../lib/cluster/leases'
import { RedisLink } from '../../lib/cluster/link'
import { Membership, type Heartbeat } from '../../lib/cluster/membership'
import { redisPair } from '../../lib/cluster/redis'
import { Requests } from '../../lib/cluster/requests'
import type { LocalConnections } from '../../lib/cluster/seam'
import { decode, type Decoded } from '../../lib/cluster/wire'
import { within } from './pool'
import type { NodeParts } from '../../lib/cluster/parts'

export interface LogEntry { level: number, msg: string, [field: string]: unknown }

export interface RecordedLog {
  log: FastifyBaseLogger
  entries: LogEntry[]
  /** Resolves with the first entry (logged already or to come) whose message includes `match`. */
  next: (match: string, ms: number) => Promise<LogEntry>
  /** The messages logged at `level` (pino's number: 20 debug, 30 info, 40 warn, 50 error). */
  at: (level: number) => string[]
}

/** A real pino logger at debug level that keeps what it writes. */
export function recordedLog (): RecordedLog {
  const entries: LogEntry[] = []
  const waiters: Array<{ match: string, resolve: (e: LogEntry) => void }> = []
  const log = pino({ level: 'debug' }, {
    write: (line: string) => {
      const entry = JSON.parse(line) as LogEntry
      entries.push(entry)
      for (let i = waiters.length - 1; i >= 0; i--) if (entry.msg.includes(waiters[i].match)) waiters.splice(i, 1)[0].resolve(entry)
    }
  })
  return {
    log,
    entries,
    next: async (match, ms) => {
      const seen = entries.find((e) => e.msg.includes(match))
      if (seen !== undefined) return seen
      return await within(new Promise<LogEntry>((resolve) => { waiters.push({ match, resolve }) }), ms, () => `a log line with "${match}"`)
    },
    at: (level) => entries.filter((e) => e.level === level).map((e) => e.msg)
  }
}

/** The connections of a real app (the plugin without cluster mode), as the cluster sees a server's. */
export function localOf (app: FastifyInstance): LocalConnections {
  return {
    get size () { return app.wsDump().wscounter },
    has: (id) => app.wsConnection(id) !== undefined,
    send: (id, data) => app.wsSend(id, data),
    closeById: (id, code, reason) => app.wsClose(id, code, reason),
    ping: (id) => app.wsPing(id),
    pong: (id) => app.wsPong(id),
    dump: (order) => app.wsDump(order),
    statistics: () => app.wsStats()
  }
}

export interface Parts {
  instance: string
  keyPrefix: string
  link: RedisLink
  channels: Channels
  leases: Leases
  membership: Membership
  requests: Requests
  logged: RecordedLog
  /** Operations that arrive on this node's lease channels (answers go to `requests` by themselves). */
  onOperation: (op: Decoded) => void
  /** Messages on the control channel. */
  onControl: (message: Buffer) => void
  /** Lets the Redis connections go (the lease is left to run out). */
  close: () => Promise<void>
}

/** What the node's jobs share, as the node builds it, with the recording logger. */
export function nodeParts (parts: Parts, nodeTimeout = 1000): NodeParts {
  const { instance, link, channels, leases, membership, requests, logged } = parts
  return { instance, nodeTimeout, link, channels, leases, membership, requests, log: logged.log }
}

export interface PartsOptions {
  keyPrefix?: string
  instance?: string
  ttlMs?: number
  requestTimeoutMs?: number
  silenceMs?: number
}

/**
 * One node's parts on a real Redis, joined as node.ts joins them: connected, holding a lease, subscribed to
 * its lease channel and the control channel. What arrives is routed as node.ts routes it: answers to
 * `requests`, the rest to `onOperation` and `onControl`, which a test sets.
 */
export async function joinedParts (redisUrl: string, options: PartsOptions = {}): Promise<Parts> {
  const { keyPrefix = 'sipws', instance = `test-${Math.random().toString(16).slice(2, 10)}`, ttlMs = 5000, requestTimeoutMs = 500, silenceMs = 1000 } = options
  const logged = recordedLog()
  const link = new RedisLink(redisPair(redisUrl), instance, logged.log, () => {})
  const channels = new Channels(keyPrefix)
  const leases = new Leases(link, channels, keyPrefix, instance, ttlMs, logged.log)
  const parts: Parts = {
    instance,
    keyPrefix,
    link,
    channels,
    leases,
    membership: new Membership(silenceMs),
    requests: new Requests(requestTimeoutMs),
    logged,
    onOperation: () => {},
    onControl: () => {},
    close: async () => { await link.close(async () => {}, 1000) }
  }
  await link.connect(5000, async () => {
    await leases.take()
    await link.subscriber.subscribe(channels.control)
  })
  link.subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => {
    if (channel.toString() === channels.control) { parts.onControl(message); return }
    const decoded = decode(message)
    if (decoded === null) return
    if ('op' in decoded) parts.onOperation(decoded)
    else parts.requests.answered(decoded)
  })
  return parts
}

/** A heartbeat as another node sends it. */
export function beatOf (instance: string, prefixes: number[], fields: Partial<Heartbeat> = {}): Heartbeat {
  return { t: 'hb', i: instance, s: 7, p: prefixes, h: 'peer.invalid', pid: 4242, c: prefixes.length, ...fields }
}

export interface Heard { channel: string, message: Buffer }

/** A plain Redis subscriber (another node, or a watcher) that keeps every message on its channels. */
export interface Listener {
  messages: Heard[]
  /** Resolves with the first message (heard already or to come) that `match` accepts. */
  next: (match: (m: Heard) => boolean, ms: number, what: string) => Promise<Heard>
  /** Commands on a connection of its own: publishing as another node, reading keys. */
  commands: IORedis
  subscribe: (...channels: string[]) => Promise<void>
  close: () => Promise<void>
}

export async function listen (redisUrl: string, ...channels: string[]): Promise<Listener> {
  const subscriber = new IORedis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0 })
  const commands = new IORedis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0 })
  subscriber.on('error', () => {})
  commands.on('error', () => {})
  await Promise.all([subscriber.connect(), commands.connect()])
  const messages: Heard[] = []
  const waiters: Array<{ match: (m: Heard) => boolean, resolve: (m: Heard) => void }> = []
  subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => {
    const heard = { channel: channel.toString(), message }
    messages.push(heard)
    for (let i = waiters.length - 1; i >= 0; i--) if (waiters[i].match(heard)) waiters.splice(i, 1)[0].resolve(heard)
  })
  const subscribe = async (...names: string[]): Promise<void> => { if (names.length > 0) await subscriber.subscribe(...names) }
  await subscribe(...channels)
  return {
    messages,
    commands,
    subscribe,
    next: async (match, ms, what) => {
      const seen = messages.find(match)
      if (seen !== undefined) return seen
      return await within(new Promise<Heard>((resolve) => { waiters.push({ match, resolve }) }), ms, () => what)
    },
    close: async () => {
      subscriber.disconnect()
      commands.disconnect()
    }
  }
}

/** How many subscribers a channel has, as Redis counts them. */
export async function subscribers (commands: IORedis, channel: string): Promise<number> {
  const [, count] = await commands.pubsub('NUMSUB', channel) as [string, number]
  return Number(count)
}
