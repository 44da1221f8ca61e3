import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

/** What the drain needs of the proxy (and, in a cluster, of the requests waiting for moving users). */
export interface DrainParts {
  /** The open connections, by id. */
  connections: () => Iterable<number>
  /** Takes a connection's bindings out (in a cluster: marks their users moving) before it is closed. */
  moveOut: (id: number) => void
  /**
   * Whether a request from this connection is waiting for a moving user, or its answer is on its way:
   * nothing went to the connection since (`lastFrameAt`: the plugin's `lastUsed`, ms).
   */
  waiting: (id: number, lastFrameAt: number) => boolean
  /** Whether the last frame over the connection (at `lastFrameAt`) went to it: an answer, not its own message. */
  lastWentTo: (id: number, lastFrameAt: number) => boolean
  /** Past `maxWaitMs`: answers what of this connection still waits (480), before it is closed. */
  giveUp: (id: number) => void
}

export interface DrainTiming {
  /** A connection is closed no sooner than this (ms) after its bindings moved out: what was on its way to it arrives. */
  settleMs: number
  /** Closed right after something went to it, within this (ms): its client has just been answered... */
  answeredMs: number
  /** ...or once nothing went either way for this long (ms): it is idle. */
  idleMs: number
  /** ...or this long (ms) after its turn, whatever it is doing (what still waits is answered 480 first). */
  maxWaitMs: number
}

export const DRAIN_TIMING: DrainTiming = { settleMs: 100, answeredMs: 50, idleMs: 1000, maxWaitMs: 8000 }

/** As the plugin's own drain: clients are told to come back later, to another node. */
const RETRY_AFTER_SECONDS = 5
const GOING_AWAY = 1001
/** How often a connection waiting for its moment is looked at. */
const LOOK_MS = 10

/**
 * SIGTERM's drain for a rolling restart, gentler than closing connections on a timer (the plugin's
 * `wsDrain`). The closes are spread over `within` ms as `wsDrain` spreads them, but a client whose
 * connection closes with a request on the wire gets no answer to it (JsSIP fails it at once), so each
 * connection is closed at the moment that is least likely: its bindings moved out first (in a cluster,
 * requests for its user now wait for the user to register on another node), no answer owed to it, and
 * either an answer has just gone to it (its client is between two requests) or it is idle. Bounded by
 * `maxWaitMs`. Meanwhile new handshakes get 503 with Retry-After, and the health route 503, so load
 * balancers send clients elsewhere. The plugin's `wsDrain` closes whatever is left, then resolves once
 * every closed hook has run.
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
    this.app.log.info({ connections: ids.length, within }, 'sip: draining; each connection closed once its users moved out and no answer is owed to it')
    await Promise.all(ids.map(async (id, i) => {
      await delay(within * (i + 1) / ids.length)
      await this.leave(id)
    }))
    await this.app.wsDrain({ within: 0 })
  }

  private async leave (id: number): Promise<void> {
    if (!this.open(id)) return
    this.parts.moveOut(id)
    const turn = Date.now()
    // Bounded by maxWaitMs.
    while (!await this.closable(id, turn)) {
      if (!this.open(id)) return
      if (Date.now() - turn >= this.timing.maxWaitMs) {
        this.parts.giveUp(id)
        break
      }
      await delay(LOOK_MS)
    }
    this.app.wsClose(id, GOING_AWAY, 'Going Away')
  }

  /**
   * Whether now is the moment to close it. Asked twice: once in a timer, then again once the frames
   * already in its socket have been read (setImmediate runs after the poll phase), so a request that
   * reached this host just before is seen.
   */
  private async closable (id: number, turn: number): Promise<boolean> {
    const { settleMs, answeredMs, idleMs } = this.timing
    for (let look = 0; look < 2; look++) {
      const info = this.app.wsConnection(id)
      if (info === undefined || info.state !== 'OPEN') return false
      const now = Date.now()
      if (now < turn + settleMs || this.parts.waiting(id, info.lastUsed)) return false
      const answered = now - info.lastUsed <= answeredMs && this.parts.lastWentTo(id, info.lastUsed)
      if (!answered && now - info.lastUsed < idleMs) return false
      if (look === 0) await new Promise((resolve) => setImmediate(resolve))
    }
    return true
  }

  private open (id: number): boolean {
    return this.app.wsConnection(id)?.state === 'OPEN'
  }
}

async function delay (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}
