import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

/** What the drain needs of the proxy (and, in a cluster, of the requests waiting for moving users). */
export interface DrainParts {
  /** The open connections, by id. */
  connections: () => Iterable<number>
  /** Takes a connection's bindings out (in a cluster: marks their users moving) before it is closed. */
  moveOut: (id: number) => void
  /**
   * Whether a request from this connection is waiting for a moving user, or its answer is on its way:
   * nothing went over the connection since `lastFrameAt` (ms).
   */
  waiting: (id: number, lastFrameAt: number) => boolean
  /** Past `maxWaitMs`: answers what of this connection still waits (480), before it is closed. */
  giveUp: (id: number) => void
}

export interface DrainTiming {
  /** A connection is closed once nothing went either way on it for this long (ms), its bindings gone as long. */
  quietMs: number
  /** ...or this long (ms) after its turn, whatever it is doing (what still waits is answered 480 first). */
  maxWaitMs: number
}

export const DRAIN_TIMING: DrainTiming = { quietMs: 100, maxWaitMs: 8000 }

/** As the plugin's own drain: clients are told to come back later, to another node. */
const RETRY_AFTER_SECONDS = 5
const GOING_AWAY = 1001

/**
 * SIGTERM's drain for a rolling restart, gentler than closing connections on a timer (the plugin's
 * `wsDrain`): the closes are spread over `within` ms as `wsDrain` spreads them, but each connection is
 * closed only once its bindings have moved out (in a cluster, requests for its user now wait for the user
 * to register on another node) and it is quiet: nothing sent or received for `quietMs`, and none of its
 * requests waiting for a moving user. A client whose connection closes with a request in flight gets no
 * answer to it (JsSIP fails it at once), so the close waits for a gap, bounded by `maxWaitMs`. Meanwhile new
 * handshakes get 503 with Retry-After, and the health route 503, so load balancers send clients elsewhere.
 * The plugin's `wsDrain` closes whatever is left, then resolves once every closed hook has run.
 */
export class Drain {
  private started = false

  constructor (private readonly app: FastifyInstance, private readonly parts: DrainParts, private readonly timing: DrainTiming = DRAIN_TIMING) {}

  get draining (): boolean {
    return this.started
  }

  /** The `xhttp:request` hook: no new connection while draining. */
  readonly gate = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (!this.started) return
    request.log.info({ remoteAddress: request.socket.remoteAddress }, 'websocket refused: draining')
    await reply.code(503).header('retry-after', String(RETRY_AFTER_SECONDS)).header('connection', 'close')
      .type('text/plain; charset=utf-8').send('draining: connect to another node')
  }

  async run (within: number): Promise<void> {
    this.started = true
    const ids = [...this.parts.connections()]
    this.app.log.info({ connections: ids.length, within }, 'sip: draining; each connection closed once its users moved out and it is quiet')
    await Promise.all(ids.map(async (id, i) => {
      await delay(within * (i + 1) / ids.length)
      await this.leave(id)
    }))
    await this.app.wsDrain({ within: 0 })
  }

  private async leave (id: number): Promise<void> {
    if (this.app.wsConnection(id)?.state !== 'OPEN') return
    this.parts.moveOut(id)
    const turn = Date.now()
    const { quietMs, maxWaitMs } = this.timing
    // Bounded by maxWaitMs: each round waits until the earliest moment the connection can be quiet.
    while (!await this.quiet(id, turn)) {
      const info = this.app.wsConnection(id)
      if (info === undefined || info.state !== 'OPEN') return
      const now = Date.now()
      if (now - turn >= maxWaitMs) {
        this.parts.giveUp(id)
        break
      }
      await delay(Math.min(Math.max(Math.max(info.lastUsed, turn) + quietMs - now, 10), turn + maxWaitMs - now))
    }
    this.app.wsClose(id, GOING_AWAY, 'Going Away')
  }

  /**
   * Whether the connection may be closed now. Asked twice: once in a timer, then again once the frames
   * already in its socket have been read (setImmediate runs after the poll phase), so a request that
   * reached this host just before is seen.
   */
  private async quiet (id: number, turn: number): Promise<boolean> {
    for (let look = 0; look < 2; look++) {
      const info = this.app.wsConnection(id)
      if (info === undefined || info.state !== 'OPEN') return false
      if (Date.now() < Math.max(info.lastUsed, turn) + this.timing.quietMs || this.parts.waiting(id, info.lastUsed)) return false
      if (look === 0) await new Promise((resolve) => setImmediate(resolve))
    }
    return true
  }
}

async function delay (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}
