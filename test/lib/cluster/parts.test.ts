import { describe, test } from 'node:test'
import { expectTypeOf } from 'expect-type'
import type { FastifyBaseLogger } from 'fastify'
import type { Channels } from '../../../lib/cluster/channels'
import type { Heartbeats } from '../../../lib/cluster/heartbeat'
import type { Leases } from '../../../lib/cluster/leases'
import type { RedisLink } from '../../../lib/cluster/link'
import type { Membership } from '../../../lib/cluster/membership'
import type { Operations } from '../../../lib/cluster/operations'
import type { NodeParts } from '../../../lib/cluster/parts'
import type { Requests } from '../../../lib/cluster/requests'
import type { Views } from '../../../lib/cluster/views'

// Compile-time checks: `npm test` type-checks this file with tsc before running it.
describe('NodeParts, what a node shares with its jobs', () => {
  test('holds exactly the node\'s name, its nodeTimeout, its Redis link and channels, its leases, membership, open requests and logger', () => {
    expectTypeOf<NodeParts>().toEqualTypeOf<{
      instance: string
      nodeTimeout: number
      link: RedisLink
      channels: Channels
      leases: Leases
      membership: Membership
      requests: Requests
      log: FastifyBaseLogger
    }>()
    expectTypeOf<keyof NodeParts>().toEqualTypeOf<'instance' | 'nodeTimeout' | 'link' | 'channels' | 'leases' | 'membership' | 'requests' | 'log'>()
  })

  test('is what each job is built from', () => {
    expectTypeOf<ConstructorParameters<typeof Operations>>().toEqualTypeOf<[parts: NodeParts]>()
    expectTypeOf<ConstructorParameters<typeof Views>>().toEqualTypeOf<[parts: NodeParts]>()
    expectTypeOf<ConstructorParameters<typeof Heartbeats>[0]>().toEqualTypeOf<NodeParts>()
  })

  test('a part missing or of another kind is not NodeParts', () => {
    expectTypeOf<Omit<NodeParts, 'log'>>().not.toMatchTypeOf<NodeParts>()
    expectTypeOf<Omit<NodeParts, 'instance'> & { instance: number }>().not.toMatchTypeOf<NodeParts>()
    expectTypeOf<Omit<NodeParts, 'leases'> & { leases: Membership }>().not.toMatchTypeOf<NodeParts>()
  })
})
