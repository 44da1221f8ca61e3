import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { expectTypeOf } from 'expect-type'
import type { Redis } from 'ioredis'
import type * as api from '../../../lib'
import type { ClusterDump, ClusterNodeInfo, ClusterRejoinedEvent, ClusterStats, MissingNode, RedisClientLike, RedisSentinelOptions, RedisSource, RejoinReason, WsCluster } from '../../../lib/cluster/types'
import type { DumpOrder, DumpResult, StatsSnapshot, WsData } from '../../../lib/types'

describe('the public types of cluster mode', () => {
  // Compile-time checks: `npm test` type-checks this file with tsc before running it.
  test('they are the ones the package exports', () => {
    expectTypeOf<api.WsCluster>().toEqualTypeOf<WsCluster>()
    expectTypeOf<api.ClusterDump>().toEqualTypeOf<ClusterDump>()
    expectTypeOf<api.ClusterStats>().toEqualTypeOf<ClusterStats>()
    expectTypeOf<api.ClusterNodeInfo>().toEqualTypeOf<ClusterNodeInfo>()
    expectTypeOf<api.MissingNode>().toEqualTypeOf<MissingNode>()
    expectTypeOf<api.RedisSource>().toEqualTypeOf<RedisSource>()
    expectTypeOf<api.RedisClientLike>().toEqualTypeOf<RedisClientLike>()
    expectTypeOf<api.RedisSentinelOptions>().toEqualTypeOf<RedisSentinelOptions>()
    expectTypeOf<api.ClusterRejoinedEvent>().toEqualTypeOf<ClusterRejoinedEvent>()
    expectTypeOf<api.RejoinReason>().toEqualTypeOf<RejoinReason>()
  })

  test('cluster:rejoined says which node, why and for how long it may have been counted gone', () => {
    expectTypeOf<ClusterRejoinedEvent>().toEqualTypeOf<{ instance: string, reason: RejoinReason, gapMs: number }>()
    expectTypeOf<RejoinReason>().toEqualTypeOf<'lease-expired' | 'lease-lost' | 'stalled'>()
    expectTypeOf<api.ClusterRejoinedHook>().parameters.toEqualTypeOf<[event: ClusterRejoinedEvent]>()
    expectTypeOf<api.WsHookMap['cluster:rejoined']>().toEqualTypeOf<api.ClusterRejoinedHook>()
  })

  test('cluster.redis takes a URL, ioredis options (Sentinel\'s among them) or an ioredis client', () => {
    expectTypeOf<string>().toMatchTypeOf<RedisSource>()
    expectTypeOf<Redis>().toMatchTypeOf<RedisClientLike>()
    expectTypeOf<Redis>().toMatchTypeOf<RedisSource>()
    expectTypeOf<{ host: string, port: number, db: number }>().toMatchTypeOf<RedisSource>()
    expectTypeOf<{ sentinels: Array<{ host: string, port: number }>, name: string }>().toMatchTypeOf<RedisSentinelOptions>()
    expectTypeOf<{ sentinels: Array<{ host: string, port: number }>, name: string, password: string }>().toMatchTypeOf<RedisSource>()
    expectTypeOf<{ sentinels: Array<{ host: string }>, name: string }>().not.toMatchTypeOf<RedisSentinelOptions>()
    expectTypeOf<{ duplicate: () => unknown, publish: () => unknown }>().not.toMatchTypeOf<RedisClientLike>()
    expectTypeOf<number>().not.toMatchTypeOf<RedisSource>()
    expectTypeOf<null>().not.toMatchTypeOf<RedisSource>()
  })

  test('wsCluster\'s calls, each confirmed', () => {
    expectTypeOf<WsCluster['instance']>().toEqualTypeOf<string>()
    expectTypeOf<WsCluster['send']>().toEqualTypeOf<(id: number, data: WsData) => Promise<boolean>>()
    expectTypeOf<WsCluster['close']>().toEqualTypeOf<(id: number, status?: number, reason?: string) => Promise<boolean>>()
    expectTypeOf<WsCluster['ping']>().toEqualTypeOf<(id: number) => Promise<boolean>>()
    expectTypeOf<WsCluster['pong']>().toEqualTypeOf<(id: number) => Promise<boolean>>()
    expectTypeOf<WsCluster['dump']>().toEqualTypeOf<(order?: DumpOrder) => Promise<ClusterDump>>()
    expectTypeOf<WsCluster['stats']>().toEqualTypeOf<() => Promise<ClusterStats>>()
    expectTypeOf<WsCluster['nodes']>().toEqualTypeOf<() => ClusterNodeInfo[]>()
    expectTypeOf<ClusterDump>().toMatchTypeOf<DumpResult>()
    expectTypeOf<ClusterDump['answered']>().toEqualTypeOf<number>()
    expectTypeOf<ClusterDump['missing']>().toEqualTypeOf<MissingNode[]>()
    expectTypeOf<ClusterStats['total']>().toEqualTypeOf<StatsSnapshot>()
    expectTypeOf<ClusterStats['nodes']>().toEqualTypeOf<Record<string, StatsSnapshot>>()
    expectTypeOf<ClusterNodeInfo>().toEqualTypeOf<{ instance: string, slot: number, prefixes: number[], host: string, pid: number, connections: number, lastSeen: number, self: boolean }>()
    expectTypeOf<MissingNode>().toEqualTypeOf<{ instance: string, slot: number }>()
  })

  test('nothing in them needs ioredis, an optional peer dependency', () => {
    const source = readFileSync(join(__dirname, '..', '..', '..', 'lib', 'cluster', 'types.ts'), 'utf8')
    const imports = [...source.matchAll(/(?:from|import\()\s*'([^']+)'/g)].map((m) => m[1])
    assert.deepEqual(imports, ['../types'])
  })
})
