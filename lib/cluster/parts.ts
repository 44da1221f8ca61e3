import type { FastifyBaseLogger } from 'fastify'
import type { Channels } from './channels'
import type { Leases } from './leases'
import type { RedisLink } from './link'
import type { Membership } from './membership'
import type { Requests } from './requests'

/** What a node's jobs (heartbeats, operations, views) share: built once by the node and given to each. */
export interface NodeParts {
  /** This process's name in the cluster. */
  instance: string
  /** A node silent this long may be gone; Redis decides (presence.ts). */
  nodeTimeout: number
  link: RedisLink
  channels: Channels
  leases: Leases
  membership: Membership
  requests: Requests
  log: FastifyBaseLogger
}
