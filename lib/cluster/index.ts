import type { FastifyBaseLogger } from 'fastify'
import type { Hooks } from '../hooks'
import { RedisCluster, type ClusterSettings } from './node'
import { redisPair } from './redis'
import type { Cluster } from './seam'
import { SingleProcess } from './single-process'
import type { RedisSource } from './types'

export interface ClusterOptions extends Omit<ClusterSettings, 'prefix'> {
  redis: RedisSource
  prefix: string
}

/**
 * This process's place in a cluster: alone with cluster mode off, else a node of the cluster Redis holds,
 * whose `cluster:node-down` hooks run when another node is gone and `cluster:rejoined` hooks when this one
 * is back after the others may have counted it gone (each bounded by `hookTimeout`). Not started yet:
 * `start()` joins.
 */
export function createCluster (options: ClusterOptions | undefined, hooks: Hooks, hookTimeout: number, log: FastifyBaseLogger): Cluster {
  if (options === undefined) return new SingleProcess()
  const { redis, ...settings } = options
  return new RedisCluster(redisPair(redis), settings, log, {
    nodeDown: (gone) => { void hooks.notify('cluster:node-down', gone, hookTimeout) },
    rejoined: (event) => { void hooks.notify('cluster:rejoined', event, hookTimeout) }
  })
}
