import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import { hostname } from 'node:os'
import { randomBytes } from 'node:crypto'
import { ClusterNodeGoneError, ClusterTimeoutError, ClusterUnavailableError } from '../errors'
import type { ConnectionInfo, DumpOrder } from '../registry'
import type { WsServer } from '../server'
import type { StatsSnapshot } from '../stats'
import { idPrefix, leaseOf, makeId, MAX_COUNTER, prefixOf } from './ids'
import { SlotLease } from './lease'
import { Membership, type Heartbeat } from './membership'
import type { ClusterNodeInfo } from './types'
import { connected, type RedisPair } from './redis'
import { CLOSE, decode, encode, encodeAnswer, PING, PONG, SEND_BINARY, SEND_TEXT, type Decoded, type DecodedAnswer, type Operation } from './wire'

export interface ClusterSettings {
  /** Key and channel prefix in Redis. */
  prefix: string
  nodeTimeout: number
  requestTimeout: number
  connectTimeout: number
}

/** One node's answer to a view request. */
export interface ViewAnswer { instance: string, connections?: ConnectionInfo[], wscounter?: number, stats?: StatsSnapshot }

interface Pending {
  /** The lease prefix asked (one node), or -1 for a question to every node. */
  target: number
  timer: NodeJS.Timeout
  settle: (ok: boolean, body: Buffer | null, err?: Error) => void
}

type Query = { t: 'q', q: 'dump', o: DumpOrder, r: number, to: number } | { t: 'q', q: 'stats', r: number, to: number }
type Control = Heartbeat | { t: 'bye', i: string } | Query

/**
 * This process as a node of the cluster: it holds a slot lease, makes ids under it (ids.ts), subscribes to
 * its leases' channels for operations on its connections, sends operations on other nodes' connections as
 * one publish each, and keeps the view of live nodes from their heartbeats (membership.ts).
 *
 * Nothing local waits on Redis: local ids never touch it, and while it is away remote calls fail at once.
 */
export class ClusterNode {
  readonly instance = `${randomBytes(6).toString('hex')}-${process.pid}`
  private readonly membership: Membership
  private readonly lease: SlotLease
  /** Lease prefixes with open connections, and how many each has; the current one is always here. */
  private readonly served = new Map<number, number>()
  private current = -1
  private counter = 0
  private rotating = false
  private readonly channels = new Map<number, string>()
  private readonly control: string
  private readonly pending = new Map<number, Pending>()
  private nextRequest = 1
  private timer: NodeJS.Timeout | null = null
  /** Since when both connections have been up (0: one is down): only then is silence from a node news. */
  private upSince = 0
  private stopped = false
  private readonly beatMs: number
  private readonly commands: Redis

  constructor (
    private readonly redis: RedisPair,
    private readonly settings: ClusterSettings,
    private readonly server: WsServer,
    private readonly log: FastifyBaseLogger,
    private readonly nodeDown: (node: ClusterNodeInfo) => void
  ) {
    this.commands = redis.commands
    // Heartbeats four times per nodeTimeout; a node three beats silent is gone: known within nodeTimeout.
    this.beatMs = Math.max(50, Math.floor(settings.nodeTimeout / 4))
    this.membership = new Membership(settings.nodeTimeout - this.beatMs)
    this.lease = new SlotLease(redis.commands, settings.prefix, this.instance, settings.nodeTimeout)
    this.control = `${settings.prefix}:ctl`
    // ioredis prints 'error' events nobody listens to on the console; ours go to the logger.
    for (const client of [redis.commands, redis.subscriber]) client.on('error', this.onError)
  }

  private readonly onError = (err: Error): void => {
    this.log.debug({ err }, 'fastify-sip-ws: cluster: Redis connection error')
  }

  // ---- start and stop ---------------------------------------------------------------------------------

  /** Connects, takes a slot and starts beating; rejects with a typed error if Redis cannot be reached in time. */
  async start (): Promise<void> {
    const { subscriber, commands } = this.redis
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { reject(new ClusterUnavailableError(`no Redis within connectTimeout (${this.settings.connectTimeout} ms)`)) }, this.settings.connectTimeout)
    })
    try {
      await Promise.race([(async () => {
        await Promise.all([connected(commands), connected(subscriber)]).catch((err: Error) => {
          throw new ClusterUnavailableError(`cannot reach Redis: ${err.message}`)
        })
        await this.takeLease()
        await subscriber.subscribe(this.control)
      })(), deadline])
    } catch (err) {
      this.stopped = true
      await this.redis.quit()
      throw err
    } finally {
      clearTimeout(timer)
    }
    subscriber.on('messageBuffer', this.onMessage)
    for (const client of [commands, subscriber]) {
      client.on('ready', this.onReady)
      client.on('close', this.onDown)
    }
    this.upSince = Date.now()
    this.timer = setInterval(this.tick, this.beatMs).unref()
    this.beat()
    this.log.info({ instance: this.instance, ...leaseOf(this.current) }, 'fastify-sip-ws: cluster node up')
  }

  /** Leaves: says so, so the others need not wait for silence, and frees the slot. */
  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    if (this.timer !== null) clearInterval(this.timer)
    for (const [request, pending] of this.pending) {
      clearTimeout(pending.timer)
      this.pending.delete(request)
      pending.settle(false, null, new ClusterUnavailableError('the node is closing'))
    }
    if (this.ready) {
      await this.commands.publish(this.control, JSON.stringify({ t: 'bye', i: this.instance })).catch(() => {})
      await this.lease.release().catch(() => {})
    }
    this.redis.subscriber.off('messageBuffer', this.onMessage)
    await this.redis.quit()
  }

  private get ready (): boolean {
    return this.commands.status === 'ready' && this.redis.subscriber.status === 'ready'
  }

  private readonly onReady = (): void => {
    if (!this.ready || this.stopped) return
    this.upSince = Date.now()
    this.log.info({ instance: this.instance }, 'fastify-sip-ws: cluster: Redis is back')
    // Whole again at once: the lease re-asserted (or a new one taken) and the others told we are here.
    this.tick()
  }

  private readonly onDown = (): void => {
    if (this.upSince !== 0 && !this.stopped) this.log.warn({ instance: this.instance }, 'fastify-sip-ws: cluster: Redis connection lost; remote calls fail until it is back, local traffic goes on')
    this.upSince = 0
  }

  // ---- ids --------------------------------------------------------------------------------------------

  /** A new connection's id, under the current lease. */
  nextId (): number {
    if (++this.counter > MAX_COUNTER * 0.9 && !this.rotating) void this.rotate()
    if (this.counter > MAX_COUNTER) throw new ClusterUnavailableError('no ids left under the current lease and no new lease yet')
    this.served.set(this.current, (this.served.get(this.current) ?? 0) + 1)
    return makeId(this.current, this.counter)
  }

  /** A connection closed: a lease we no longer make ids under is dropped with its last connection. */
  released (id: number): void {
    const prefix = idPrefix(id)
    const left = (this.served.get(prefix) ?? 1) - 1
    if (left > 0 || prefix === this.current) {
      this.served.set(prefix, left)
      return
    }
    this.served.delete(prefix)
    this.channels.delete(prefix)
    if (this.redis.subscriber.status === 'ready') void this.redis.subscriber.unsubscribe(this.channel(prefix)).catch(() => {})
  }

  private async takeLease (): Promise<void> {
    const lease = await this.lease.take(Date.now())
    if (lease === null) throw new ClusterUnavailableError('all 256 slots are held by other nodes')
    const prefix = prefixOf(lease)
    await this.redis.subscriber.subscribe(this.channel(prefix))
    if (!this.served.has(prefix)) this.served.set(prefix, 0)
    const previous = this.current
    this.current = prefix
    this.counter = 0
    if (previous !== -1 && this.served.get(previous) === 0) this.released(makeId(previous, 1))
  }

  /** A new lease for new ids; the old one's connections keep their ids and channel. */
  private async rotate (): Promise<void> {
    this.rotating = true
    try {
      await this.lease.release().catch(() => {})
      await this.takeLease()
    } catch (err) {
      this.log.error({ err }, 'fastify-sip-ws: cluster: could not take a new lease')
    } finally {
      this.rotating = false
    }
  }

  // ---- heartbeats and membership ----------------------------------------------------------------------

  private readonly tick = (): void => {
    if (this.stopped) return
    if (this.ready) {
      this.lease.renew().then((ours) => {
        if (ours || this.rotating) return
        this.log.warn({ instance: this.instance, ...leaseOf(this.current) }, 'fastify-sip-ws: cluster: slot taken by another node while Redis was away; taking another (existing ids keep working)')
        void this.rotate()
      }, () => {})
      this.beat()
    }
    const now = Date.now()
    // Silence means something only if we were up long enough to hear the heartbeats.
    if (this.upSince !== 0 && now - this.upSince >= this.settings.nodeTimeout) {
      for (const node of this.membership.sweep(now)) this.gone(node, 'silent')
    }
  }

  private beat (): void {
    const beat: Heartbeat = { t: 'hb', i: this.instance, s: leaseOf(this.current).slot, p: [...this.served.keys()], h: hostname(), pid: process.pid, c: this.server.registry.size }
    this.commands.publish(this.control, JSON.stringify(beat)).catch(() => {})
  }

  private gone (node: ClusterNodeInfo, why: 'silent' | 'left'): void {
    this.log.warn({ instance: node.instance, slot: node.slot, why }, 'fastify-sip-ws: cluster: node gone')
    const prefixes = new Set(node.prefixes)
    for (const [request, pending] of this.pending) {
      if (!prefixes.has(pending.target)) continue
      clearTimeout(pending.timer)
      this.pending.delete(request)
      pending.settle(false, null, new ClusterNodeGoneError(node.instance))
    }
    this.nodeDown({ ...node })
  }

  /** Every live node, this one first. */
  nodes (): ClusterNodeInfo[] {
    const self: ClusterNodeInfo = { instance: this.instance, slot: leaseOf(this.current).slot, prefixes: [...this.served.keys()], host: hostname(), pid: process.pid, connections: this.server.registry.size, lastSeen: Date.now(), self: true }
    return [self, ...[...this.membership.values()].map((n) => ({ ...n }))]
  }

  // ---- operations on remote connections ---------------------------------------------------------------

  private channel (prefix: number): string {
    let name = this.channels.get(prefix)
    if (name === undefined) {
      name = `${this.settings.prefix}:c:${prefix}`
      if (this.channels.size > 4096) this.channels.clear()
      this.channels.set(prefix, name)
    }
    return name
  }

  /** The live owner's prefix for a remote id, or -1 when the id is ours, no node holds it, or Redis is away. */
  private route (id: number): number {
    const prefix = idPrefix(id)
    if (prefix < 0 || this.served.has(prefix) || !this.ready) return -1
    return this.membership.owner(prefix) === undefined ? -1 : prefix
  }

  /**
   * One operation on another node's connection: one publish to its lease's channel, in order with every
   * other publish of this node. True when its node is alive and Redis up (the data is on its way), false
   * otherwise; `wsCluster` has the variants that wait for the owner to confirm.
   */
  forward (op: Operation, id: number, body: string | Uint8Array | null): boolean {
    const prefix = this.route(id)
    if (prefix < 0) return false
    this.commands.publish(this.channel(prefix), encode(op, id, 0, 0, body)).catch((err: unknown) => {
      this.log.debug({ err, id }, 'fastify-sip-ws: cluster: publish failed')
    })
    return true
  }

  /** The same, resolving once the owner has said whether the connection was open and took it. */
  async confirm (op: Operation, id: number, body: string | Uint8Array | null): Promise<boolean> {
    const prefix = idPrefix(id)
    if (prefix < 0 || this.served.has(prefix)) return false
    if (!this.ready) throw new ClusterUnavailableError('Redis is not connected')
    if (this.membership.owner(prefix) === undefined) return false
    const request = this.request(prefix)
    const receivers = await this.commands.publish(this.channel(prefix), encode(op, id, request.id, this.current, body)).catch((err: unknown) => {
      request.cancel()
      throw new ClusterUnavailableError((err as Error).message)
    })
    if (receivers === 0) {
      // Nobody subscribes to that lease any more: its node is gone, whatever the view says yet.
      request.cancel()
      return false
    }
    return (await request.answer).ok
  }

  private request (target: number): { id: number, answer: Promise<{ ok: boolean, body: Buffer | null }>, cancel: () => void } {
    const id = this.nextRequest
    this.nextRequest = this.nextRequest === 0xffffffff ? 1 : this.nextRequest + 1
    let settle: Pending['settle'] = () => {}
    const answer = new Promise<{ ok: boolean, body: Buffer | null }>((resolve, reject) => {
      settle = (ok, body, err) => { if (err !== undefined) reject(err); else resolve({ ok, body }) }
    })
    const timer = setTimeout(() => {
      this.pending.delete(id)
      settle(false, null, new ClusterTimeoutError(this.settings.requestTimeout))
    }, this.settings.requestTimeout)
    this.pending.set(id, { target, timer, settle })
    return { id, answer, cancel: () => { clearTimeout(timer); this.pending.delete(id) } }
  }

  // ---- views ------------------------------------------------------------------------------------------

  /**
   * Asks every live node (this one answers at once) and collects what they say until all have or
   * `requestTimeout` passes. Returns the answers and the nodes that did not answer in time.
   */
  async ask (query: { q: 'dump', o: DumpOrder } | { q: 'stats' }, local: ViewAnswer): Promise<{ answers: ViewAnswer[], missing: ClusterNodeInfo[] }> {
    const others = [...this.membership.values()]
    const answers: ViewAnswer[] = [local]
    if (others.length === 0) return { answers, missing: [] }
    if (!this.ready) return { answers, missing: others }
    const waiting = new Set(others.map((n) => n.instance))
    const id = this.nextRequest
    this.nextRequest = this.nextRequest === 0xffffffff ? 1 : this.nextRequest + 1
    await new Promise<void>((resolve) => {
      const finish = (): void => { clearTimeout(timer); this.pending.delete(id); resolve() }
      const timer = setTimeout(finish, this.settings.requestTimeout)
      this.pending.set(id, {
        target: -1,
        timer,
        settle: (_ok, body, err) => {
          // The node is closing: answer with what came so far.
          if (err !== undefined) { finish(); return }
          if (body === null) return
          let answer: ViewAnswer
          try {
            answer = JSON.parse(body.toString()) as ViewAnswer
          } catch {
            return
          }
          if (!waiting.delete(answer.instance)) return
          answers.push(answer)
          if (waiting.size === 0) finish()
        }
      })
      this.commands.publish(this.control, JSON.stringify({ t: 'q', ...query, r: id, to: this.current })).catch(finish)
    })
    return { answers, missing: others.filter((n) => waiting.has(n.instance)) }
  }

  // ---- what arrives -----------------------------------------------------------------------------------

  private readonly onMessage = (channel: Buffer, message: Buffer): void => {
    if (channel.length === this.control.length && channel.toString() === this.control) {
      this.onControl(message)
      return
    }
    const decoded = decode(message)
    if (decoded === null) return
    if ('op' in decoded) this.perform(decoded)
    else this.answered(decoded)
  }

  /** An operation another node sent for one of our connections. */
  private perform ({ op, id, request, replyTo, body }: Decoded): void {
    let ok = false
    try {
      if (op === SEND_TEXT) ok = this.server.send(id, body.toString())
      else if (op === SEND_BINARY) ok = this.server.send(id, body)
      else if (op === CLOSE) ok = body.length >= 2 && this.server.closeById(id, body.readUInt16BE(0), body.subarray(2).toString())
      else if (op === PING) ok = this.server.ping(id)
      else if (op === PONG) ok = this.server.pong(id)
    } catch (err) {
      this.log.warn({ err, id, op }, 'fastify-sip-ws: cluster: remote operation refused')
    }
    if (request !== 0) this.commands.publish(this.channel(replyTo), encodeAnswer(request, ok)).catch(() => {})
  }

  private answered ({ request, ok, body }: DecodedAnswer): void {
    const pending = this.pending.get(request)
    if (pending === undefined) return
    if (pending.target !== -1) {
      clearTimeout(pending.timer)
      this.pending.delete(request)
    }
    pending.settle(ok, body.length === 0 ? null : body)
  }

  private onControl (message: Buffer): void {
    let control: Control
    try {
      control = JSON.parse(message.toString()) as Control
    } catch {
      return
    }
    if (control === null || typeof control !== 'object') return
    if (control.t === 'hb') {
      // Only our nodes write here, but a bad message must cost nothing more than itself.
      if (control.i === this.instance || typeof control.i !== 'string' || !Array.isArray(control.p) || !control.p.every(Number.isSafeInteger)) return
      const fresh = this.membership.heard(control, Date.now())
      if (fresh !== null) this.log.info({ instance: fresh.instance, slot: fresh.slot }, 'fastify-sip-ws: cluster: node up')
    } else if (control.t === 'bye') {
      if (control.i === this.instance) return
      const node = this.membership.remove(control.i)
      if (node !== null) this.gone(node, 'left')
    } else if (control.t === 'q') {
      if (control.to === this.current) return
      const answer: ViewAnswer = control.q === 'dump'
        ? { instance: this.instance, ...this.localDump(control.o) }
        : { instance: this.instance, stats: this.server.statistics() }
      this.commands.publish(this.channel(control.to), encodeAnswer(control.r, true, JSON.stringify(answer))).catch(() => {})
    }
  }

  private localDump (order: DumpOrder): { connections: ConnectionInfo[], wscounter: number } {
    const { connections, wscounter } = this.server.dump(order)
    return { connections, wscounter }
  }
}

