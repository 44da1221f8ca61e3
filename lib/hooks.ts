import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { HookNotFunctionError, UnknownHookError } from './errors'
import type { ClusterNodeInfo, ClusterRejoinedEvent } from './cluster/types'
import type { WsClosedEvent, WsMessage, WsOpenEvent } from './types'

/**
 * Async (or returning nothing), or Fastify's callback style: a hook that declares a third parameter gets a
 * `done(err?)` and is waited for until it calls it (or replies), so `app.auth([...])` of @fastify/auth and
 * other Fastify hooks may be added as they are.
 */
export type XhttpRequestHook = (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply, done: (err?: Error | null) => void) => unknown
export type WsOpenHook = (this: FastifyInstance, event: WsOpenEvent) => unknown
export type WsMessageHook = (this: FastifyInstance, message: WsMessage) => unknown
export type WsClosedHook = (this: FastifyInstance, event: WsClosedEvent) => unknown
/**
 * Cluster mode: a node is gone (silent for nodeTimeout, or it left, and Redis confirms it: its presence is
 * absent); its connection ids reach nobody now.
 */
export type ClusterNodeDownHook = (this: FastifyInstance, node: ClusterNodeInfo) => unknown
/**
 * Cluster mode: this node is back after the others may have counted it gone (its lease ran out or was
 * taken, or it stalled past nodeTimeout); write back what it keeps in Redis for its connections.
 */
export type ClusterRejoinedHook = (this: FastifyInstance, event: ClusterRejoinedEvent) => unknown

export interface WsHookMap {
  'xhttp:request': XhttpRequestHook
  /** Runs before each JSON-RPC request on `rpc.path`; a hook that replies refuses it (auth, say). */
  'rpc:request': XhttpRequestHook
  'websocket:open': WsOpenHook
  'websocket:message': WsMessageHook
  'websocket:closed': WsClosedHook
  'cluster:node-down': ClusterNodeDownHook
  'cluster:rejoined': ClusterRejoinedHook
}
export type WsHookName = keyof WsHookMap

interface Registered<F> {
  fn: F
  /** The instance `addWsHook` was called on: `this` inside the hook. */
  instance: FastifyInstance
}

const NAMES: readonly WsHookName[] = ['xhttp:request', 'rpc:request', 'websocket:open', 'websocket:message', 'websocket:closed', 'cluster:node-down', 'cluster:rejoined']

export function isThenable (value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as PromiseLike<unknown>).then === 'function'
}

export type EventHookName = 'websocket:open' | 'websocket:message' | 'websocket:closed'
type EventHook = Registered<(this: FastifyInstance, event: any) => unknown>

/** Who is told how long each hook call took (telemetry); `observed` is asked before any clock is read. */
export interface HookTimer {
  readonly observed: boolean
  hook: (name: WsHookName, id: number | null, outcome: 'ok' | 'error', startedAt: number) => void
}

const NOBODY: HookTimer = { observed: false, hook: () => {} }

export class Hooks {
  private readonly lists: { [K in WsHookName]: Array<Registered<WsHookMap[K]>> } = {
    'xhttp:request': [],
    'rpc:request': [],
    'websocket:open': [],
    'websocket:message': [],
    'websocket:closed': [],
    'cluster:node-down': [],
    'cluster:rejoined': []
  }

  // The event lists again, by field: `lists[name]` with a name that varies is a megamorphic keyed load, paid
  // per message on the hot path; the lists are never replaced, so these stay the same arrays.
  private readonly openHooks = this.lists['websocket:open'] as EventHook[]
  private readonly messageHooks = this.lists['websocket:message'] as EventHook[]
  private readonly closedHooks = this.lists['websocket:closed'] as EventHook[]

  constructor (private readonly log: FastifyBaseLogger, private readonly timer: HookTimer = NOBODY) {}

  add<K extends WsHookName> (instance: FastifyInstance, name: K, fn: WsHookMap[K]): void {
    if (!NAMES.includes(name)) throw new UnknownHookError(String(name), NAMES.join(', '))
    if (typeof fn !== 'function') throw new HookNotFunctionError(name, typeof fn)
    this.lists[name].push({ fn, instance })
  }

  has (name: WsHookName): boolean {
    return this.lists[name].length > 0
  }

  /**
   * Runs the `xhttp:request` (or `rpc:request`) hooks in order, each awaited, and stops at the first that
   * sends a reply. Returns true when a hook replied (the request is refused). Errors propagate to Fastify's
   * error handler, which logs them and answers 500 (or the error's statusCode).
   */
  async runRequest (name: 'xhttp:request' | 'rpc:request', request: FastifyRequest, reply: FastifyReply): Promise<boolean> {
    for (const { fn, instance } of this.lists[name]) {
      const startedAt = this.timer.observed ? performance.now() : -1
      try {
        await (fn.length >= 3 ? callbackHook(fn, instance, request, reply) : (fn as TwoArguments).call(instance, request, reply))
      } catch (err) {
        if (startedAt >= 0) this.timer.hook(name, null, 'error', startedAt)
        throw err
      }
      if (startedAt >= 0) this.timer.hook(name, null, 'ok', startedAt)
      if (reply.sent) return true
    }
    return false
  }

  /** The hooks of an event, in the order added. */
  events (name: EventHookName): readonly EventHook[] {
    return name === 'websocket:message' ? this.messageHooks : name === 'websocket:open' ? this.openHooks : this.closedHooks
  }

  /**
   * Calls one event hook. Returns its promise when it returned one, else undefined; a hook that throws is
   * logged and counts as done: one bad handler must not take a connection down.
   */
  call (hook: EventHook, name: EventHookName, event: { id: number }): PromiseLike<unknown> | undefined {
    let result: unknown
    const startedAt = this.timer.observed ? performance.now() : -1
    try {
      result = hook.fn.call(hook.instance, event)
    } catch (err) {
      this.failed(name, event.id, err)
      if (startedAt >= 0) this.timer.hook(name, event.id, 'error', startedAt)
      return undefined
    }
    if (!isThenable(result)) {
      if (startedAt >= 0) this.timer.hook(name, event.id, 'ok', startedAt)
      return undefined
    }
    if (startedAt >= 0) this.timeSettled(result, name, event.id, startedAt)
    return result
  }

  private timeSettled (pending: PromiseLike<unknown>, name: EventHookName, id: number, startedAt: number): void {
    pending.then(() => { this.timer.hook(name, id, 'ok', startedAt) }, () => { this.timer.hook(name, id, 'error', startedAt) })
  }

  /**
   * Runs a hook that belongs to no connection (`cluster:node-down`, `cluster:rejoined`): each in turn,
   * awaited up to `timeoutMs`, errors logged.
   */
  async notify<K extends 'cluster:node-down' | 'cluster:rejoined'> (name: K, event: Parameters<WsHookMap[K]>[0], timeoutMs: number): Promise<void> {
    const hooks = this.lists[name] as Array<Registered<(this: FastifyInstance, event: Parameters<WsHookMap[K]>[0]) => unknown>>
    for (const { fn, instance } of hooks) {
      let timer: NodeJS.Timeout | undefined
      try {
        await Promise.race([
          (async () => { await fn.call(instance, event) })(),
          new Promise((resolve) => { timer = setTimeout(resolve, timeoutMs) })
        ])
      } catch (err) {
        this.log.error({ err, hook: name }, 'fastify-sip-ws: %s hook failed', name)
      } finally {
        clearTimeout(timer)
      }
    }
  }

  failed (name: WsHookName, id: number, err: unknown): void {
    this.log.error({ err, id, hook: name }, 'fastify-sip-ws: %s hook failed', name)
  }
}

type RequestHook = WsHookMap['xhttp:request']
type TwoArguments = (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply) => unknown

/**
 * A Fastify callback-style hook: settled by its `done(err?)`, by the promise it may return all the same,
 * or by its reply, which a hook that answers sends instead of calling `done` (as in Fastify's own chain).
 */
async function callbackHook (fn: RequestHook, instance: FastifyInstance, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const res = reply.raw
    const answered = (): void => { resolve() }
    const finish = (err?: Error | null): void => {
      res.off('finish', answered)
      if (err !== undefined && err !== null) reject(err)
      else resolve()
    }
    res.once('finish', answered)
    const result: unknown = fn.call(instance, request, reply, finish)
    if (isThenable(result)) result.then(() => { finish() }, finish)
  })
}
