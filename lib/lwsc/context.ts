import type { ClientOptions } from 'ws'
import type { LwscOptionsResolved } from '../options'
import type { LwscLogger } from './logger'
import type { LwscCounters } from './stats'

/** A connection taken out of service whose socket may still be closing. */
export interface Closing {
  close: () => Promise<void>
}

/** What a client shares with its endpoints and connections. */
export interface LwscContext {
  readonly options: LwscOptionsResolved
  readonly log: LwscLogger
  readonly counters: LwscCounters
  /** Built once from the options; ws copies it per connection. */
  readonly wsOptions: ClientOptions
  /** Connections taken out of service whose socket has not finished closing; `close()` waits for them too. */
  readonly discarded: Set<Closing>
  /** Set by `close()`: nothing reconnects or queues from then on. */
  closed: boolean
}
