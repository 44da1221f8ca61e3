import type { FastifyBaseLogger } from 'fastify'
import type { EventHookName, Hooks, WsHookMap } from '../hooks'
import type { ConnectionState } from '../types'

/** What a waiting message costs beyond its bytes: the event object and the queue slot. */
export const MESSAGE_OVERHEAD = 128

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
  /** Bumped when the awaited promise settles or times out, so a late settle of an older one is ignored. */
  generation = 0
  /** Bytes, plus bookkeeping, of the messages waiting. */
  cost = 0
  name: EventHookName = 'websocket:open'
  event: { id: number } | null = null
  /** The next hook of `name` to call for `event`. */
  index = 0
  timer: NodeJS.Timeout | null = null
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

  /** Runs the event's hooks now, or queues the event behind this connection's running one. */
  dispatch<K extends EventHookName> (conn: Owner, name: K, event: Parameters<WsHookMap[K]>[0], cost: number): void {
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
        this.begin(conn, name, event, i + 1, pending)
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

  private begin (conn: Owner, name: EventHookName, event: { id: number }, next: number, pending: PromiseLike<unknown>): void {
    let queue = conn.queue
    if (queue === null) queue = conn.queue = new HookQueue()
    queue.busy = true
    this.busyQueues++
    queue.name = name
    queue.event = event
    queue.index = next
    this.wait(conn, queue, pending)
  }

  private wait (conn: Owner, queue: HookQueue, pending: PromiseLike<unknown>): void {
    const generation = ++queue.generation
    const name = queue.name
    queue.awaiting = true
    // One timer per connection, re-armed for each awaited hook rather than created anew.
    if (queue.timer === null) queue.timer = setTimeout(this.onTimeout, this.settings.hookTimeout, conn).unref()
    else queue.timer.refresh()
    pending.then(() => { this.settled(conn, generation) }, (err: unknown) => {
      if (generation !== queue.generation) this.log.warn({ err, id: conn.id, hook: name }, 'fastify-sip-ws: %s hook failed after hookTimeout', name)
      else this.hooks.failed(name, conn.id, err)
      this.settled(conn, generation)
    })
  }

  private settled (conn: Owner, generation: number): void {
    const queue = conn.queue
    if (queue === null || queue.generation !== generation) return
    queue.generation++
    queue.awaiting = false
    this.drive(conn, queue)
  }

  // A timer callback with the connection as its argument: no closure per connection.
  private readonly onTimeout = (conn: Owner): void => {
    const queue = conn.queue
    if (queue === null || !queue.awaiting) return
    this.log.warn({ id: conn.id, hook: queue.name, hookTimeout: this.settings.hookTimeout, waiting: queue.waiting }, 'fastify-sip-ws: %s hook still running after hookTimeout; moving on', queue.name)
    queue.generation++
    queue.awaiting = false
    this.drive(conn, queue)
  }

  /** Runs the rest of the current event's hooks, then the waiting events, until one awaits or none is left. */
  private drive (conn: Owner, queue: HookQueue): void {
    const resumeBelow = this.settings.queueLimit / 2
    for (;;) {
      const list = this.hooks.events(queue.name)
      while (queue.index < list.length) {
        const pending = this.hooks.call(list[queue.index++], queue.name, queue.event as { id: number })
        if (pending !== undefined) {
          this.wait(conn, queue, pending)
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
