import type { FastifyBaseLogger } from 'fastify'
import type { EventHookName, Hooks, WsHookMap } from '../hooks'
import type { ConnectionState } from '../types'

/** What a waiting message costs beyond its bytes: the event object and the queue slot. */
export const MESSAGE_OVERHEAD = 128

/** One queue's handlers for its awaited hook promises; stale once a timeout moved the queue on. */
interface Settle {
  stale: boolean
  /** The hook whose promise outlived hookTimeout, for the log line of its late failure. */
  hook: EventHookName
  fulfilled: () => void
  rejected: (err: unknown) => void
}

interface Task {
  name: EventHookName
  event: { id: number }
  cost: number
}

/**
 * One connection's hook events while an async hook of it is running: the event being run, and those that
 * arrived meanwhile, in arrival order. Created the first time a hook of the connection returns a promise;
 * a connection whose hooks are all synchronous never has one.
 */
export class HookQueue {
  /** An event is being run (or waits for a hook's promise). */
  busy = false
  /** The socket was paused because `cost` went over the limit. */
  paused = false
  /** A hook's promise is awaited now. */
  awaiting = false
  /**
   * What a settled hook promise calls, made once and reused for every promise this queue awaits, until a
   * promise outlives hookTimeout: then it is left to that promise (a late settle finds itself stale) and
   * the next await gets a new one.
   */
  settle: Settle | null = null
  /** Bytes, plus bookkeeping, of the messages waiting. */
  cost = 0
  name: EventHookName = 'websocket:open'
  event: { id: number } | null = null
  /** The next hook of `name` to call for `event`. */
  index = 0
  /**
   * Armed while hooks may be awaited, and not moved for each await: when it fires, it times out the
   * awaited hook if it has run for hookTimeout, or arms itself again for what that hook has left.
   */
  timer: NodeJS.Timeout | null = null
  /** Date.now() when the hook awaited now was called (the message's own time when it came with one). */
  awaitedAt = 0
  // A FIFO array read from `first`: no shift() copying under a long backlog.
  private readonly tasks: Task[] = []
  private first = 0

  push (name: EventHookName, event: { id: number }, cost: number): void {
    this.tasks.push({ name, event, cost })
    this.cost += cost
  }

  /** Makes the next waiting event current; false when none waits. */
  shift (): boolean {
    if (this.first === this.tasks.length) {
      if (this.first !== 0) { this.tasks.length = 0; this.first = 0 }
      return false
    }
    const task = this.tasks[this.first]
    this.tasks[this.first++] = undefined as unknown as Task
    this.cost -= task.cost
    this.name = task.name
    this.event = task.event
    this.index = 0
    return true
  }

  get waiting (): number {
    return this.tasks.length - this.first
  }
}

/** What the dispatcher needs of a connection: its queue is the dispatcher's to write. */
export interface QueueOwner {
  readonly id: number
  readonly state: ConnectionState
  queue: HookQueue | null
}

export interface FlowControl<C extends QueueOwner> {
  /** Stop reading the connection's socket. */
  pause: (conn: C) => void
  resume: (conn: C) => void
}

export interface HookQueueSettings {
  hookTimeout: number
  /** Pause reading a connection once its waiting messages cost more than this. */
  queueLimit: number
}

/**
 * Runs each connection's `websocket:open`, `websocket:message` and `websocket:closed` hooks one event at a
 * time, in arrival order, as a Kamailio worker runs one connection's messages: an async hook is awaited
 * before that connection's next event, and other connections never wait. While hooks run behind, later
 * events queue on the connection, and past `queueLimit` its socket is paused until they catch up.
 *
 * Synchronous hooks take the direct path: no promise, no queue, no allocation.
 */
export class HookDispatcher<Owner extends QueueOwner> {
  private busyQueues = 0
  private idleWaiters: Array<() => void> = []

  constructor (
    private readonly hooks: Hooks,
    private readonly settings: HookQueueSettings,
    private readonly flow: FlowControl<Owner>,
    private readonly log: FastifyBaseLogger
  ) {}

  /** Connections whose hooks are running or waiting now. */
  get busy (): number {
    return this.busyQueues
  }

  /**
   * Runs the event's hooks now, or queues the event behind this connection's running one. `now` is the
   * event's Date.now() when the caller has read it already (0: read it if a hook is awaited).
   */
  dispatch<K extends EventHookName> (conn: Owner, name: K, event: Parameters<WsHookMap[K]>[0], cost: number, now = 0): void {
    const queue = conn.queue
    if (queue !== null && queue.busy) {
      queue.push(name, event, cost)
      if (!queue.paused && queue.cost > this.settings.queueLimit) {
        queue.paused = true
        this.flow.pause(conn)
      }
      return
    }
    const list = this.hooks.events(name)
    for (let i = 0; i < list.length; i++) {
      const pending = this.hooks.call(list[i], name, event)
      if (pending !== undefined) {
        this.begin(conn, name, event, i + 1, pending, now)
        return
      }
    }
  }

  /** Resolves once no connection has hooks running or waiting, or after `timeoutMs`; true when idle. */
  async whenIdle (timeoutMs: number): Promise<boolean> {
    if (this.busyQueues === 0) return true
    let timer: NodeJS.Timeout | undefined
    const idle = await new Promise<boolean>((resolve) => {
      this.idleWaiters.push(() => { resolve(true) })
      timer = setTimeout(resolve, timeoutMs, false)
    })
    clearTimeout(timer)
    return idle
  }

  private begin (conn: Owner, name: EventHookName, event: { id: number }, next: number, pending: PromiseLike<unknown>, now: number): void {
    let queue = conn.queue
    if (queue === null) queue = conn.queue = new HookQueue()
    queue.busy = true
    this.busyQueues++
    queue.name = name
    queue.event = event
    queue.index = next
    this.wait(conn, queue, pending, now)
  }

  private wait (conn: Owner, queue: HookQueue, pending: PromiseLike<unknown>, now: number): void {
    queue.awaiting = true
    queue.awaitedAt = now !== 0 ? now : Date.now()
    if (queue.timer === null) queue.timer = setTimeout(this.onTimeout, this.settings.hookTimeout, conn).unref()
    const settle = queue.settle ?? (queue.settle = this.handlers(conn, queue))
    pending.then(settle.fulfilled, settle.rejected)
  }

  /**
   * The handlers of a queue's awaited promises. A queue awaits one promise at a time, so the same pair
   * serves every await (no closures per message) until a timeout moves on from a promise still pending.
   */
  private handlers (conn: Owner, queue: HookQueue): Settle {
    const settle: Settle = {
      stale: false,
      hook: queue.name,
      fulfilled: () => { if (!settle.stale) this.settled(conn, queue) },
      rejected: (err: unknown) => {
        if (settle.stale) {
          this.log.warn({ err, id: conn.id, hook: settle.hook }, 'fastify-sip-ws: %s hook failed after hookTimeout', settle.hook)
          return
        }
        this.hooks.failed(queue.name, conn.id, err)
        this.settled(conn, queue)
      }
    }
    return settle
  }

  private settled (conn: Owner, queue: HookQueue): void {
    queue.awaiting = false
    this.drive(conn, queue)
  }

  // A timer callback with the connection as its argument: no closure per connection.
  private readonly onTimeout = (conn: Owner): void => {
    const queue = conn.queue
    if (queue === null) return
    queue.timer = null
    if (!queue.awaiting) return
    const { hookTimeout } = this.settings
    const waited = Date.now() - queue.awaitedAt
    if (waited < hookTimeout) {
      // The hook awaited now began after this timer was armed. (A wall clock set back counts it anew.)
      if (waited < 0) queue.awaitedAt = Date.now()
      queue.timer = setTimeout(this.onTimeout, waited < 0 ? hookTimeout : hookTimeout - waited, conn).unref()
      return
    }
    this.log.warn({ id: conn.id, hook: queue.name, hookTimeout: this.settings.hookTimeout, waiting: queue.waiting }, 'fastify-sip-ws: %s hook still running after hookTimeout; moving on', queue.name)
    // The promise still pending keeps these handlers: whenever it settles, they find themselves stale.
    if (queue.settle !== null) {
      queue.settle.stale = true
      queue.settle.hook = queue.name
      queue.settle = null
    }
    this.settled(conn, queue)
  }

  /** Runs the rest of the current event's hooks, then the waiting events, until one awaits or none is left. */
  private drive (conn: Owner, queue: HookQueue): void {
    const resumeBelow = this.settings.queueLimit / 2
    for (;;) {
      const list = this.hooks.events(queue.name)
      while (queue.index < list.length) {
        const pending = this.hooks.call(list[queue.index++], queue.name, queue.event as { id: number })
        if (pending !== undefined) {
          this.wait(conn, queue, pending, 0)
          return
        }
      }
      if (!queue.shift()) break
      if (queue.paused && queue.cost <= resumeBelow) {
        queue.paused = false
        this.flow.resume(conn)
      }
    }
    queue.busy = false
    queue.event = null
    if (queue.paused) {
      queue.paused = false
      this.flow.resume(conn)
    }
    if (conn.state === 'CLOSED' && queue.timer !== null) {
      clearTimeout(queue.timer)
      queue.timer = null
    }
    if (--this.busyQueues === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters
      this.idleWaiters = []
      for (const wake of waiters) wake()
    }
  }
}
