import type { Redis, RedisOptions } from 'ioredis'
import { InvalidOptionError } from '../errors'

import type { RedisSource } from './types'

export interface RedisPair {
  /** Commands and publishes. */
  commands: Redis
  /** Subscriber mode needs a connection of its own. */
  subscriber: Redis
  /** Closes what we opened, waiting at most `withinMs` for Redis to answer; a client the user passed in stays theirs. */
  quit: (withinMs: number) => Promise<void>
}

// Remote calls fail fast while Redis is away (no offline queue to replay stale sends later), and a
// reconnect is tried at least every half second, so a node is whole again soon after Redis returns.
const OURS: RedisOptions = {
  lazyConnect: true,
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  enableAutoPipelining: true,
  autoResubscribe: true,
  retryStrategy: (attempt: number) => Math.min(50 * attempt, 500)
}

function isClient (value: unknown): value is Redis {
  return value !== null && typeof value === 'object' && typeof (value as Redis).duplicate === 'function' && typeof (value as Redis).publish === 'function'
}

function load (): typeof import('ioredis').default {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('ioredis') as typeof import('ioredis')).default
  } catch {
    throw new InvalidOptionError('"cluster.redis"', 'needs the ioredis package installed (npm install ioredis)')
  }
}

export function redisPair (source: RedisSource): RedisPair {
  if (isClient(source)) {
    const subscriber = source.duplicate(OURS)
    return { commands: source, subscriber, quit: async () => { subscriber.disconnect() } }
  }
  const IORedis = load()
  const make = (): Redis => typeof source === 'string' ? new IORedis(source, OURS) : new IORedis({ ...(source as RedisOptions), ...OURS })
  const commands = make()
  const subscriber = make()
  return {
    commands,
    subscriber,
    quit: async (withinMs) => {
      // quit() waits for the server's answer, which never comes while Redis is down or stalled.
      for (const client of [commands, subscriber]) {
        if (client.status === 'ready') await atMost(client.quit(), withinMs)
        client.disconnect()
      }
    }
  }
}

/**
 * Waits for `work` (something asked of Redis) at most `ms`, then goes on whatever became of it: a stalled
 * Redis, its socket open and nothing answered, must not hold up a node's close.
 */
export async function atMost (work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([work.catch(() => {}), new Promise<void>((resolve) => { timer = setTimeout(resolve, ms) })])
  } finally {
    clearTimeout(timer)
  }
}

/** Connects a client made with `lazyConnect`; one already connecting or ready is left alone. */
export async function connected (client: Redis): Promise<void> {
  if (client.status === 'wait') await client.connect()
  else if (client.status !== 'ready') await new Promise<void>((resolve) => { client.once('ready', resolve) })
}
