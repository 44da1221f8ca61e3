import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, describe, test } from 'node:test'
import type WebSocket from 'ws'
import { clusterApi } from '../../../lib/cluster/api'
import type { RemoteConnections, ViewAnswer, ViewQuery } from '../../../lib/cluster/seam'
import { SingleProcess } from '../../../lib/cluster/single-process'
import type { ClusterNodeInfo } from '../../../lib/cluster/types'
import type { ConnectionInfo, StatsSnapshot, WsData } from '../../../lib/types'
import { localOf } from '../../helpers/cluster-parts'
import { within } from '../../helpers/pool'
import { connect, startApp, type Started } from '../../helpers/server'
import { reportedSetUp } from '../../helpers/set-up'

/** A connection as another node lists it. */
function listed (id: number, lastUsed: number): ConnectionInfo {
  return { id, state: 'OPEN', subProtocol: 'sip', createdAt: 0, lastUsed, lastUsedAgo: 0, remoteAddress: '10.0.0.1', remotePort: id % 65536, socketAddress: '10.0.0.1', socketPort: id % 65536, localAddress: '127.0.0.1', localPort: 80, transport: 'ws' }
}

function node (instance: string, slot: number): ClusterNodeInfo {
  return { instance, slot, prefixes: [slot], host: 'h', pid: 1, connections: 0, lastSeen: 0, self: false }
}

/**
 * This process alone, except that its view questions get the answers (and missing nodes) a test gives, as
 * other nodes would give them, and its remote calls are recorded and answered true.
 */
class Answered extends SingleProcess {
  readonly asked: Array<{ query: ViewQuery, local: ViewAnswer }> = []
  readonly calls: unknown[][] = []
  override readonly remote: RemoteConnections

  constructor (private readonly others: ViewAnswer[], private readonly silent: ClusterNodeInfo[] = []) {
    super()
    const record = (name: string) => async (...args: unknown[]): Promise<boolean> => { this.calls.push([name, ...args]); return true }
    this.remote = {
      send: () => false,
      close: () => false,
      ping: () => false,
      pong: () => false,
      confirmSend: record('send') as (id: number, data: WsData) => Promise<boolean>,
      confirmClose: record('close') as (id: number, code: number, reason: string) => Promise<boolean>,
      confirmPing: record('ping') as (id: number) => Promise<boolean>,
      confirmPong: record('pong') as (id: number) => Promise<boolean>
    }
  }

  override async ask (query: ViewQuery, local: ViewAnswer): Promise<{ answers: ViewAnswer[], missing: ClusterNodeInfo[] }> {
    this.asked.push({ query, local })
    return { answers: [local, ...this.others], missing: this.silent }
  }
}

describe('app.wsCluster', () => {
  let s: Started
  let clients: WebSocket[]
  let ids: number[]
  before(reportedSetUp(async () => {
    s = await startApp()
    clients = await Promise.all([connect(s.url), connect(s.url)])
    ids = s.app.wsDump().connections.map((c) => c.id)
  }))
  after(async () => {
    for (const ws of clients ?? []) ws.terminate()
    await s?.app.close()
  })

  test('alone: ids held here answer at once; any other id reaches nobody', async () => {
    const cluster = new SingleProcess()
    const api = clusterApi(localOf(s.app), cluster)
    assert.equal(api.instance, cluster.instance)
    const got = once(clients[0], 'message')
    assert.equal(await api.send(ids[0], 'hello'), true)
    assert.equal(((await within(got, 5000, () => 'the message')) as [Buffer])[0].toString(), 'hello')
    const pinged = once(clients[0], 'ping')
    assert.equal(await api.ping(ids[0]), true)
    await within(pinged, 5000, () => 'the ping')
    const ponged = once(clients[0], 'pong')
    assert.equal(await api.pong(ids[0]), true)
    await within(ponged, 5000, () => 'the pong')
    const elsewhere = Math.max(...ids) + 100
    assert.deepEqual([await api.send(elsewhere, 'x'), await api.close(elsewhere), await api.ping(elsewhere), await api.pong(elsewhere)], [false, false, false, false])
    assert.deepEqual(api.nodes().map((n) => [n.instance, n.self]), [[cluster.instance, true]])
  })

  test('the checks of the local calls apply to any id, before anything goes to another node', async () => {
    const cluster = new Answered([])
    const api = clusterApi(localOf(s.app), cluster)
    const remote = Math.max(...ids) + 100
    for (const id of [ids[0], remote]) {
      await assert.rejects(api.send(id, 42 as unknown as string), { code: 'FST_SIPWS_INVALID_ARGUMENT' })
      await assert.rejects(api.send(id, null as unknown as string), { code: 'FST_SIPWS_INVALID_ARGUMENT' })
      await assert.rejects(api.close(id, 1005), { code: 'FST_SIPWS_INVALID_CLOSE' })
      await assert.rejects(api.close(id, 1000, 'x'.repeat(124)), { code: 'FST_SIPWS_INVALID_CLOSE' })
    }
    await assert.rejects(api.close(1.5), { code: 'FST_SIPWS_BAD_CONNECTION_ID' })
    await assert.rejects(api.close(undefined as unknown as number), { code: 'FST_SIPWS_BAD_CONNECTION_ID', message: /^wsCluster\.close: / })
    assert.deepEqual(cluster.calls, [], 'nothing sent')
    // What passes the checks goes to the owner with the defaults filled in.
    assert.equal(await api.send(remote, 'over there'), true)
    assert.equal(await api.close(remote), true)
    assert.equal(await api.close(remote, 4000, 'moved'), true)
    assert.equal(await api.ping(remote), true)
    assert.equal(await api.pong(remote), true)
    assert.deepEqual(cluster.calls, [['send', remote, 'over there'], ['close', remote, 1000, 'Normal closure'], ['close', remote, 4000, 'moved'], ['ping', remote], ['pong', remote]])
  })

  test('a local close takes the default status and reason', async () => {
    const ws = await connect(s.url)
    const id = s.app.wsDump('used_asc').connections[0].id
    const closed = once(ws, 'close')
    assert.equal(await clusterApi(localOf(s.app), new SingleProcess()).close(id), true)
    const [code, reason] = await within(closed, 5000, () => 'the close') as [number, Buffer]
    assert.deepEqual([code, reason.toString()], [1000, 'Normal closure'])
  })

  test('dump asks every node in the order given, with this node\'s own first 50; the first 50 of all come back', async () => {
    // Ids interleave across nodes; last-used times too.
    const a = Array.from({ length: 50 }, (_, i) => listed(1000 + 3 * i, 5000 + 7 * i))
    const b = Array.from({ length: 50 }, (_, i) => listed(1001 + 3 * i, 5003 + 7 * i))
    const cluster = new Answered([{ instance: 'a', connections: a, wscounter: 70 }, { instance: 'b', connections: b, wscounter: 60 }, { instance: 'stats-only' }], [node('frozen', 9)])
    const api = clusterApi(localOf(s.app), cluster)
    const mine = s.app.wsDump('id_hash')
    const byId = await api.dump()
    assert.deepEqual(cluster.asked[0], { query: { q: 'dump', o: 'id_hash' }, local: { instance: cluster.instance, connections: JSON.parse(JSON.stringify(mine.connections)), wscounter: mine.wscounter } })
    assert.equal(byId.connections.length, 50)
    assert.deepEqual(byId.connections.map((c) => c.id), [...mine.connections, ...a, ...b].map((c) => c.id).sort((x, y) => x - y).slice(0, 50))
    assert.deepEqual([byId.wscounter, byId.truncated, byId.answered], [mine.wscounter + 130, true, 4])
    assert.deepEqual(byId.missing, [{ instance: 'frozen', slot: 9 }])
    const recentFirst = await api.dump('used_asc')
    assert.equal(cluster.asked[1].query.q === 'dump' && cluster.asked[1].query.o, 'used_asc')
    const times = recentFirst.connections.map((c) => c.lastUsed)
    assert.deepEqual(times, [...times].sort((x, y) => y - x))
    assert.equal(times[0], Math.max(...[...a, ...b].map((c) => c.lastUsed), ...mine.connections.map((c) => c.lastUsed)))
    const oldestFirst = await api.dump('used_desc')
    const old = oldestFirst.connections.map((c) => c.lastUsed)
    assert.deepEqual(old, [...old].sort((x, y) => x - y))
    await assert.rejects(api.dump('by_ip' as never), { code: 'FST_SIPWS_BAD_DUMP_ORDER' })
    assert.equal(cluster.asked.length, 3, 'a bad order asks nobody')
  })

  test('a dump that lists every connection is not truncated', async () => {
    const api = clusterApi(localOf(s.app), new Answered([{ instance: 'a', connections: [listed(9999, 1)], wscounter: 1 }]))
    const dump = await api.dump()
    assert.deepEqual([dump.connections.length, dump.wscounter, dump.truncated, dump.answered, dump.missing], [s.app.wsDump().wscounter + 1, s.app.wsDump().wscounter + 1, false, 2, []])
  })

  test('stats sums every counter over the nodes that answered, and keeps each node\'s own', async () => {
    const mine = s.app.wsStats()
    const theirs = { ...mine, ws_current_connections: 5, ws_kmsg_received_frames: 4 } as unknown as StatsSnapshot
    const cluster = new Answered([{ instance: 'a', stats: theirs }, { instance: 'no-stats' }], [node('frozen', 3)])
    const { total, nodes, missing } = await clusterApi(localOf(s.app), cluster).stats()
    assert.deepEqual(cluster.asked[0], { query: { q: 'stats' }, local: { instance: cluster.instance, stats: mine } })
    assert.equal(total.ws_current_connections, mine.ws_current_connections + 5)
    assert.equal(total.ws_sip_received_frames, 2 * mine.ws_sip_received_frames)
    assert.equal((total as unknown as Record<string, number>).ws_kmsg_received_frames, 4, 'a counter one node has is summed over those that have it')
    assert.deepEqual(Object.keys(nodes).sort(), [cluster.instance, 'a'].sort())
    assert.deepEqual(nodes.a, theirs)
    assert.deepEqual(missing, [{ instance: 'frozen', slot: 3 }])
  })
})
