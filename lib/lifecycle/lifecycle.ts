import type { FastifyBaseLogger } from 'fastify'
import { CLOSE_GOING_AWAY, CLOSE_REASONS, RETRY_AFTER_SECONDS } from '../constants'
import type { Connection } from '../connection/connection'
import type { HookDispatcher } from '../connection/hook-queue'
import type { Keepalive } from '../connection/keepalive'
import type { Registry } from '../connection/registry'
import type { ServiceState } from '../handshake/admission'
import type { Refusal } from '../handshake/refusal'
import type { Settings } from '../options'
import type { WsServer } from '../server'
import { spreadCloses } from './spread-closes'

export interface LifecycleParts {
  server: WsServer
  registry: Registry
  keepalive: Keepalive
  dispatcher: HookDispatcher<Connection>
  /** Stops taking upgrades, at the end of shutdown. */
  closeUpgrades: () => void
}

/**
 * Whether this node serves, and how it stops: `wsDisable`/`wsEnable`, a drain for a rolling restart, and
 * shutdown. Handshakes ask it (`ServiceState`) before anything else.
 */
export class Lifecycle implements ServiceState {
  private serving = true
  /** Set by `drain()` or `shutdown()`: handshakes get 503 with Retry-After. */
  private leaving: 'draining' | 'shutdown' | null = null
  private stopDrain: (() => void) | null = null
  private draining: Promise<void> | null = null

  constructor (private readonly settings: Settings, private readonly parts: LifecycleParts, private readonly log: FastifyBaseLogger) {}

  get enabled (): boolean {
    return this.serving
  }

  setEnabled (enabled: boolean): void {
    this.serving = enabled
    if (enabled && this.leaving === 'draining') {
      this.leaving = null
      this.stopDrain?.()
    }
    this.log.warn(enabled ? 'fastify-sip-ws: enabled' : 'fastify-sip-ws: disabled; new WebSocket handshakes get 503')
  }

  leavingRefusal (): Refusal | null {
    if (this.leaving === null) return null
    return {
      status: 503,
      headers: { 'Retry-After': String(RETRY_AFTER_SECONDS) },
      message: this.leaving === 'draining' ? 'WebSocket service draining: connect to another node' : 'WebSocket service shutting down'
    }
  }

  /**
   * Takes this node out of service for a rolling restart: new handshakes get 503 with Retry-After, and open
   * connections are closed with 1001 "Going Away", spread evenly over `within` ms so their clients do not
   * all reconnect to the other nodes at once. Resolves when none is left and their closed hooks have run.
   * `setEnabled(true)` ends a drain early.
   */
  async drain (within: number): Promise<void> {
    if (this.draining !== null) return await this.draining
    if (this.leaving === null) this.leaving = 'draining'
    const open = this.parts.registry.open()
    this.log.info({ connections: open.length, within }, 'fastify-sip-ws: draining; new handshakes get 503')
    this.draining = (async () => {
      await new Promise<void>((resolve) => {
        this.stopDrain = spreadCloses(open, within, (conn) => {
          conn.close('local', CLOSE_GOING_AWAY, CLOSE_REASONS[CLOSE_GOING_AWAY])
        }, resolve)
      })
      this.stopDrain = null
      if (this.leaving === 'draining') await this.settle()
    })()
    try {
      await this.draining
    } finally {
      this.draining = null
    }
  }

  /** The first step of shutdown: from now on handshakes get this 503. */
  beginShutdown (): Refusal {
    this.leaving = 'shutdown'
    return this.leavingRefusal() as Refusal
  }

  /**
   * Server shutdown: every open connection gets Close 1001 "Going Away" and its closed event. Resolves when
   * all are gone and every hook has settled: ws's close timeout bounds the first wait (a last timer
   * terminates stragglers), `hookTimeout` the second.
   */
  async shutdown (): Promise<void> {
    this.beginShutdown()
    this.parts.keepalive.stop()
    this.stopDrain?.()
    this.parts.server.closeAll(CLOSE_GOING_AWAY, CLOSE_REASONS[CLOSE_GOING_AWAY])
    await this.settle()
    this.parts.closeUpgrades()
  }

  /** Waits until no connection is left (terminating those past closeTimeout) and hooks have settled. */
  private async settle (): Promise<void> {
    const { registry, dispatcher } = this.parts
    const stragglers = setTimeout(() => {
      for (const conn of registry.values()) conn.socket?.terminate()
    }, this.settings.closeTimeout + 500)
    await registry.whenEmpty()
    clearTimeout(stragglers)
    if (!await dispatcher.whenIdle(this.settings.hookTimeout)) {
      this.log.warn({ connections: dispatcher.busy, hookTimeout: this.settings.hookTimeout }, 'fastify-sip-ws: hooks still running after hookTimeout; not waiting for them')
    }
  }
}
