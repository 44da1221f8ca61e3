import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { expectTypeOf } from 'expect-type'
import type { Leases } from '../../../lib/cluster/leases'
import type { RedisCluster } from '../../../lib/cluster/node'
import type { Operations } from '../../../lib/cluster/operations'
import { NO_CONNECTIONS, type Cluster, type IdSource, type LocalConnections, type RemoteConnections, type ViewAnswer, type ViewQuery } from '../../../lib/cluster/seam'
import type { SingleProcess } from '../../../lib/cluster/single-process'
import type { ClusterNodeInfo } from '../../../lib/cluster/types'
import type { WsServer } from '../../../lib/server'
import type { DumpOrder, DumpResult, StatsSnapshot, WsData } from '../../../lib/types'

describe('the seam between the server and the cluster', () => {
  // Compile-time checks: `npm test` type-checks this file with tsc before running it.
  test('each side implements its half: the server its connections, each cluster its ids, remote side and joining', () => {
    expectTypeOf<WsServer>().toMatchTypeOf<LocalConnections>()
    expectTypeOf<Leases>().toMatchTypeOf<IdSource>()
    expectTypeOf<Operations>().toMatchTypeOf<RemoteConnections>()
    expectTypeOf<RedisCluster>().toMatchTypeOf<Cluster>()
    expectTypeOf<SingleProcess>().toMatchTypeOf<Cluster>()
    expectTypeOf<Cluster['ids']>().toEqualTypeOf<IdSource>()
    expectTypeOf<Cluster['remote']>().toEqualTypeOf<RemoteConnections>()
    expectTypeOf<Cluster['start']>().toEqualTypeOf<(local: LocalConnections) => Promise<void>>()
    expectTypeOf<Cluster['ask']>().returns.resolves.toEqualTypeOf<{ answers: ViewAnswer[], missing: ClusterNodeInfo[] }>()
    expectTypeOf<Cluster['nodes']>().returns.toEqualTypeOf<ClusterNodeInfo[]>()
  })

  test('remote calls: the plain ones say at once, the confirmed ones resolve with the owner\'s word', () => {
    expectTypeOf<RemoteConnections['send']>().toEqualTypeOf<(id: number, data: WsData) => boolean>()
    expectTypeOf<RemoteConnections['close']>().toEqualTypeOf<(id: number, code: number, reason: string) => boolean>()
    expectTypeOf<RemoteConnections['confirmSend']>().toEqualTypeOf<(id: number, data: WsData) => Promise<boolean>>()
    expectTypeOf<RemoteConnections['confirmClose']>().toEqualTypeOf<(id: number, code: number, reason: string) => Promise<boolean>>()
    expectTypeOf<LocalConnections['closeById']>().toEqualTypeOf<(id: number, code?: number, reason?: string) => boolean>()
    expectTypeOf<LocalConnections['dump']>().toEqualTypeOf<(order?: DumpOrder) => DumpResult>()
    expectTypeOf<LocalConnections['statistics']>().returns.toEqualTypeOf<StatsSnapshot>()
  })

  test('a view question names its order when it is a dump, and only then', () => {
    expectTypeOf<{ q: 'dump', o: 'used_asc' }>().toMatchTypeOf<ViewQuery>()
    expectTypeOf<{ q: 'stats' }>().toMatchTypeOf<ViewQuery>()
    expectTypeOf<{ q: 'dump' }>().not.toMatchTypeOf<ViewQuery>()
    expectTypeOf<{ q: 'dump', o: 'by_ip' }>().not.toMatchTypeOf<ViewQuery>()
    expectTypeOf<{ q: 'nodes' }>().not.toMatchTypeOf<ViewQuery>()
    expectTypeOf<{ instance: 'n1' }>().toMatchTypeOf<ViewAnswer>()
    expectTypeOf<{ wscounter: 1 }>().not.toMatchTypeOf<ViewAnswer>()
  })

  test('NO_CONNECTIONS holds nothing and does nothing', () => {
    expectTypeOf(NO_CONNECTIONS).toEqualTypeOf<LocalConnections>()
    assert.equal(NO_CONNECTIONS.size, 0)
    for (const id of [0, 1, 2 ** 40, Number.MAX_SAFE_INTEGER]) {
      assert.deepEqual([NO_CONNECTIONS.has(id), NO_CONNECTIONS.send(id, 'x'), NO_CONNECTIONS.closeById(id), NO_CONNECTIONS.ping(id), NO_CONNECTIONS.pong(id)], [false, false, false, false, false])
    }
    for (const order of ['id_hash', 'used_asc', 'used_desc', undefined] as const) {
      assert.deepEqual(NO_CONNECTIONS.dump(order), { connections: [], wscounter: 0, truncated: false })
    }
    assert.deepEqual(NO_CONNECTIONS.statistics(), {})
    // Each dump is a fresh value: a caller that changes one changes no other.
    NO_CONNECTIONS.dump().connections.push(null as never)
    assert.deepEqual(NO_CONNECTIONS.dump().connections, [])
  })
})
