import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import WebSocket from 'ws'
import { LwscClosedError, LwscConnectionError, LwscConnectTimeoutError, LwscProtocolRefusedError, LwscReadTimeoutError } from '../errors'
import type { LwscContext } from './context'
import { type Job, JobQueue } from './job'

const CONNECTING = 0
const IDLE = 1
const BUSY = 2
/** The endpoint a connection serves, as the connection sees it: where it connects, and whom it tells. */
export interface ConnectionOwner {
  readonly url: string
  readonly proto: string
  /** The connection is open and takes jobs. */
  opened: (conn: Connection) => void
  /** The connection is free for the next job. */
  serve: (conn: Connection) => void
  /** A job could not be carried out. */
  fail: (job: Job, err: Error) => void
  /** The connection left service; called once. */
  detached: (conn: Connection, err: Error, wasOpen: boolean) => void
}

// Closed, or discarded and closing: never handed another job.
const GONE = 3

/**
 * One client WebSocket to an endpoint. It carries at most one request at a time, so the next message it
 * receives is that request's reply; notifications need no reply and only pass through.
 */
export class Connection {
  private state = CONNECTING
  private readonly ws: WebSocket
  private socket: Socket | null = null
  private job: Job | null = null
  // Notifications handed to ws whose write has not completed; ws calls back in send order.
  private readonly writing = new JobQueue()
  private connectTimer: NodeJS.Timeout | null
  private readTimer: NodeJS.Timeout | null = null
  private idleTimer: NodeJS.Timeout | null = null
  /** Date.now() of the last job handed to this connection or answered on it, or of its opening. */
  private usedAt = 0
  private alive = true
  private opened = false
  private attached = true
  private ended = false
  private failure: Error | null = null
  private whenClosed: Promise<void> | null = null
  private resolveClosed: (() => void) | null = null

  constructor (private readonly endpoint: ConnectionOwner, private readonly ctx: LwscContext) {
    this.ws = new WebSocket(endpoint.url, endpoint.proto, ctx.wsOptions)
    this.ws.on('upgrade', this.onUpgrade)
    this.ws.on('unexpected-response', this.onUnexpectedResponse)
    this.ws.on('open', this.onOpen)
    this.ws.on('message', this.onMessage)
    this.ws.on('pong', this.onPong)
    this.ws.on('error', this.onError)
    this.ws.on('close', this.onClose)
    // The socket keeps the process alive while connecting; this timer need not.
    this.connectTimer = setTimeout(this.onConnectTimeout, ctx.options.timeoutInit).unref()
  }

  /** Open, idle and not being closed by the peer: a job given now goes out at once. */
  get usable (): boolean {
    return this.state === IDLE && this.ws.readyState === WebSocket.OPEN
  }

  get busy (): boolean {
    return this.state === BUSY
  }

  /** Open, with no request in flight and no notification being written: closing it now fails no job. */
  get quiet (): boolean {
    return this.state === IDLE && this.writing.length === 0
  }

  dispatch (job: Job): void {
    this.usedAt = Date.now()
    if (job.expectsReply) {
      this.state = BUSY
      this.job = job
      this.socket?.ref()
      // One timer per connection, re-armed per request: at most one request is in flight, so when it fires
      // with a job present, that job was sent timeoutRead ago.
      if (this.readTimer === null) this.readTimer = setTimeout(this.onReadTimeout, this.ctx.options.timeoutRead).unref()
      else this.readTimer.refresh()
      this.ws.send(job.data)
    } else {
      this.writing.push(job)
      this.ws.send(job.data, this.onWritten)
    }
    if (this.ctx.options.verbosity >= 3) {
      this.ctx.log.debug({ url: this.endpoint.url, proto: this.endpoint.proto, bytes: Buffer.byteLength(job.data), reply: job.expectsReply }, 'lwsc: sent')
    }
  }

  /** Idle connections must not keep the process alive, like an http.Agent's free sockets. */
  park (): void {
    this.socket?.unref()
  }

  /** One keepalive round: a connection that did not answer the previous ping (or send anything) is dead. */
  keepalive (): void {
    if (this.state !== IDLE && this.state !== BUSY) return
    if (!this.alive) {
      if (this.ctx.options.verbosity >= 2) this.ctx.log.debug({ url: this.endpoint.url, proto: this.endpoint.proto }, 'lwsc: no answer to keepalive ping; closing')
      this.discard(new LwscConnectionError(this.endpoint.url, `no answer to a keepalive ping within ${this.ctx.options.keepaliveInterval} ms`))
      return
    }
    this.alive = false
    this.ws.ping()
  }

  /** Closes with 1000 and resolves once the socket is gone; a request in flight is rejected with LwscClosedError. */
  close (): Promise<void> {
    if (this.ended) return Promise.resolve()
    if (this.whenClosed !== null) return this.whenClosed
    this.whenClosed = new Promise((resolve) => { this.resolveClosed = resolve })
    // A parked socket would let the process exit before the close handshake and strand `await close()`.
    this.socket?.ref()
    if (this.failure === null) this.failure = new LwscClosedError(this.endpoint.url)
    if (this.state === CONNECTING) {
      this.state = GONE
      this.detach()
      this.ws.terminate()
    } else if (this.state !== GONE) {
      this.state = GONE
      this.detach()
      // ws gives up on the peer's Close after `closeTimeout` (set from timeoutRead) and destroys the socket.
      this.ws.close(1000)
    }
    return this.whenClosed
  }

  /**
   * Takes a quiet connection out of service with a Close 1000 (idle past `idleTimeout`, or its endpoint
   * evicted). Like a discarded one, the client's `close()` still waits for its socket.
   */
  retire (why: string): void {
    if (!this.quiet) return
    if (this.ctx.options.verbosity >= 2) this.ctx.log.debug({ url: this.endpoint.url, proto: this.endpoint.proto, why }, 'lwsc: closing a pooled connection')
    this.failure = new LwscConnectionError(this.endpoint.url, why)
    this.state = GONE
    this.ctx.discarded.add(this)
    this.detach()
    this.ws.close(1000)
  }

  // Taken out of service at once so the endpoint can replace it; the socket closes in the background.
  private discard (err: Error): void {
    if (this.state === GONE) return
    if (this.failure === null) this.failure = err
    this.state = GONE
    this.ctx.discarded.add(this)
    this.detach()
    this.ws.terminate()
  }

  private detach (): void {
    if (!this.attached) return
    this.attached = false
    const err = this.failure ?? new LwscConnectionError(this.endpoint.url, 'connection lost')
    const job = this.job
    if (job !== null) {
      this.job = null
      this.endpoint.fail(job, err)
    }
    this.endpoint.detached(this, err, this.opened)
  }

  private readonly onUpgrade = (res: IncomingMessage): void => {
    this.socket = res.socket as Socket
    // ws refuses the handshake itself when the answer differs; we only give the refusal its own error.
    if (res.headers['sec-websocket-protocol'] !== this.endpoint.proto) {
      this.failure = new LwscProtocolRefusedError(this.endpoint.url, this.endpoint.proto)
    }
  }

  private readonly onUnexpectedResponse = (_req: unknown, res: IncomingMessage): void => {
    const { url, proto } = this.endpoint
    // A refusal that lists the supported sub-protocols, without ours, is a sub-protocol refusal.
    const supported = res.headers['sec-websocket-protocol']
    if (typeof supported === 'string' && !supported.split(',').some((name) => name.trim() === proto)) {
      this.failure = new LwscProtocolRefusedError(url, proto)
    } else {
      this.failure = new LwscConnectionError(url, `the opening handshake was answered ${res.statusCode ?? 0} ${res.statusMessage ?? ''}`.trimEnd())
    }
    res.resume()
    this.ws.terminate()
  }

  private readonly onConnectTimeout = (): void => {
    this.connectTimer = null
    if (this.state !== CONNECTING) return
    const { url } = this.endpoint
    this.ctx.counters.timeouts++
    this.failure = new LwscConnectTimeoutError(url, this.ctx.options.timeoutInit)
    this.ws.terminate()
  }

  private readonly onOpen = (): void => {
    if (this.connectTimer !== null) {
      clearTimeout(this.connectTimer)
      this.connectTimer = null
    }
    if (this.state !== CONNECTING) return
    this.state = IDLE
    this.opened = true
    this.ctx.counters.opened++
    this.usedAt = Date.now()
    if (this.ctx.options.idleTimeout > 0) this.idleTimer = setTimeout(this.onIdleCheck, this.ctx.options.idleTimeout).unref()
    this.endpoint.opened(this)
  }

  private readonly onMessage = (data: WebSocket.RawData, isBinary: boolean): void => {
    this.alive = true
    const job = this.job
    if (job === null) {
      // A reply to a request that already timed out, or data nobody asked for: never the next request's.
      this.ctx.counters.dropped++
      if (this.ctx.options.verbosity >= 2) this.ctx.log.debug({ url: this.endpoint.url, proto: this.endpoint.proto, bytes: (data as Buffer).length }, 'lwsc: dropped a message no request was waiting for')
      return
    }
    this.job = null
    this.state = IDLE
    this.usedAt = Date.now()
    this.ctx.counters.replies++
    if (this.ctx.options.verbosity >= 3) this.ctx.log.debug({ url: this.endpoint.url, proto: this.endpoint.proto, bytes: (data as Buffer).length, binary: isBinary }, 'lwsc: received')
    // ws emits every message of one read before control returns, so the next job goes out in a microtask:
    // messages that came in the same read as this reply (a peer answering twice) then find no job and are
    // dropped, instead of being taken as the next request's reply. Queued before the caller's continuation,
    // so a caller that sends again at once finds this connection idle rather than opening another.
    queueMicrotask(this.serveNext)
    // binaryType is 'nodebuffer', so a whole message is one Buffer.
    job.resolve(isBinary ? data as Buffer : (data as Buffer).toString())
  }

  private readonly serveNext = (): void => {
    this.endpoint.serve(this)
  }

  private readonly onReadTimeout = (): void => {
    const job = this.job
    if (job === null || this.state !== BUSY) return
    const { url, proto } = this.endpoint
    this.job = null
    this.ctx.counters.timeouts++
    if (this.ctx.options.verbosity >= 1) this.ctx.log.info({ url, proto, timeoutRead: this.ctx.options.timeoutRead }, 'lwsc: read timeout; discarding the connection')
    this.endpoint.fail(job, new LwscReadTimeoutError(url, this.ctx.options.timeoutRead))
    // Its reply may still arrive; only a fresh connection is sure not to hand it to the next request.
    this.discard(new LwscConnectionError(url, 'discarded after a read timeout'))
  }

  // Re-armed for what is left of idleTimeout after the last job: one timer per connection, no per-job work.
  private readonly onIdleCheck = (): void => {
    this.idleTimer = null
    if (this.state === GONE) return
    const { idleTimeout } = this.ctx.options
    const left = this.usedAt + idleTimeout - Date.now()
    if (left <= 0 && this.quiet) {
      this.retire(`idle for ${idleTimeout} ms (idleTimeout)`)
      return
    }
    // Still busy past the timeout (a slow reply, a long write): look again a whole timeout later.
    this.idleTimer = setTimeout(this.onIdleCheck, left > 0 ? left : idleTimeout).unref()
  }

  private readonly onPong = (): void => {
    this.alive = true
  }

  private readonly onWritten = (err?: Error | null): void => {
    const job = this.writing.shift()
    if (job === null) return
    if (err === undefined || err === null) job.resolve(undefined)
    else this.endpoint.fail(job, new LwscConnectionError(this.endpoint.url, err.message, { cause: err }))
  }

  private readonly onError = (err: Error & { code?: string }): void => {
    if (this.failure !== null) return
    const code = err.code
    const why = code !== undefined && !err.message.includes(code) ? `${err.message} (${code})` : err.message
    this.failure = new LwscConnectionError(this.endpoint.url, why, { cause: err })
  }

  private readonly onClose = (code: number): void => {
    if (this.connectTimer !== null) clearTimeout(this.connectTimer)
    if (this.readTimer !== null) clearTimeout(this.readTimer)
    if (this.idleTimer !== null) clearTimeout(this.idleTimer)
    this.connectTimer = this.readTimer = this.idleTimer = null
    this.state = GONE
    this.ended = true
    this.socket = null
    this.ctx.discarded.delete(this)
    if (this.failure === null) {
      const why = this.opened ? `closed by the server (code ${code})` : 'closed during the opening handshake'
      this.failure = new LwscConnectionError(this.endpoint.url, why)
    }
    this.detach()
    // Write callbacks normally ran before this; any left are reported here so none waits forever.
    for (let job = this.writing.takeAll(); job !== null;) {
      const next = job.next
      job.next = null
      this.endpoint.fail(job, this.failure)
      job = next
    }
    if (this.resolveClosed !== null) this.resolveClosed()
  }
}
