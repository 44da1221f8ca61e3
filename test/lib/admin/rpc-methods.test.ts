import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import { RpcFault, rpcMethods, statisticsLines, type Method } from '../../../lib/admin/rpc-methods'
import { clusterApi } from '../../../lib/cluster/api'
import { dumpLine } from '../../../lib/connection/registry'
import { entry } from '../../helpers/connections'
import { startEdge, type StartedEdge } from '../../helpers/edge'
import { closed, connect } from '../../helpers/server'

/** The methods over an edge of this process alone, as registerRpc builds them. */
async function methodsOn (t: { after: (fn: () => Promise<void>) => void }): Promise<{ s: StartedEdge, methods: Record<string, Method> }> {
  const s = await startEdge()
  t.after(s.close)
  const methods = rpcMethods({ server: s.edge.server, lifecycle: s.edge.lifecycle, cluster: clusterApi(s.edge.server, s.cluster), log: s.app.log })
  return { s, methods }
}

/** What a method answers, or the fault it throws as `{ fault: [code, message] }`. */
async function answer (methods: Record<string, Method>, name: string, params: unknown[]): Promise<unknown> {
  try {
    return await methods[name](params)
  } catch (err) {
    if (err instanceof RpcFault) return { fault: [err.code, err.message] }
    throw err
  }
}

const INVALID = { fault: [500, 'Invalid Parameters'] }
const UNKNOWN = { fault: [500, 'Unknown connection ID'] }

describe('RpcFault', () => {
  test('an Error with Kamailio\'s code beside its message', () => {
    const fault = new RpcFault(500, 'Unknown connection ID')
    assert.ok(fault instanceof Error)
    assert.deepEqual([fault.code, fault.message], [500, 'Unknown connection ID'])
  })
})

describe('rpcMethods', () => {
  test('Kamailio\'s ws.* and stats.get_statistics, and the cluster methods beyond them', async (t) => {
    const { methods } = await methodsOn(t)
    assert.deepEqual(Object.keys(methods).sort(), [
      'cluster.close', 'cluster.dump', 'cluster.nodes', 'cluster.ping', 'cluster.pong', 'cluster.send', 'cluster.stats',
      'stats.get_statistics', 'ws.close', 'ws.disable', 'ws.drain', 'ws.dump', 'ws.enable', 'ws.ping', 'ws.pong'
    ])
  })

  test('a connection id first: missing is Invalid Parameters; not an integer is an unknown connection, as in Kamailio', async (t) => {
    const { methods } = await methodsOn(t)
    for (const name of ['ws.close', 'ws.ping', 'ws.pong', 'cluster.send', 'cluster.close', 'cluster.ping', 'cluster.pong']) {
      assert.deepEqual(await answer(methods, name, []), INVALID, name)
      for (const id of ['1', 1.5, null, true, [1]]) assert.deepEqual(await answer(methods, name, [id, 'x']), UNKNOWN, `${name} ${JSON.stringify(id)}`)
    }
    // An integer no connection has: a fault for Kamailio's methods, a plain false for the confirmed ones.
    for (const name of ['ws.close', 'ws.ping', 'ws.pong']) assert.deepEqual(await answer(methods, name, [999]), UNKNOWN, name)
    assert.deepEqual(await answer(methods, 'cluster.send', [999, 'x']), { delivered: false })
    assert.deepEqual(await answer(methods, 'cluster.close', [999]), { closed: false })
    assert.deepEqual(await answer(methods, 'cluster.ping', [999]), { delivered: false })
    assert.deepEqual(await answer(methods, 'cluster.pong', [999]), { delivered: false })
  })

  test('ws.dump and cluster.dump: Kamailio\'s lines, at most 50, "yes" when there were more; the order is checked', async (t) => {
    const { s, methods } = await methodsOn(t)
    const conns = Array.from({ length: 60 }, () => entry(s.edge.registry.nextId(), Date.now(), { remoteAddress: '192.0.2.1', localPort: 5060 }))
    for (const conn of conns) s.edge.registry.add(conn)
    // Socketless: they must be gone before the edge shuts down, which waits for every connection to go.
    try {
      const expected = conns.slice(0, 50).map((c) => dumpLine(c.describe(Date.now())))
      assert.deepEqual(await answer(methods, 'ws.dump', []), { connections: expected, info: { wscounter: 60, truncated: 'yes' } })
      assert.deepEqual(await answer(methods, 'cluster.dump', []), { connections: expected, info: { wscounter: 60, truncated: 'yes', answered: 1, missing: [] } })
      const newest = (await answer(methods, 'ws.dump', ['used_asc']) as { connections: string[] }).connections
      assert.equal(newest[0], dumpLine(conns[59].describe(Date.now())))
      for (const name of ['ws.dump', 'cluster.dump']) {
        await assert.rejects(async () => await methods[name](['newest']), { code: 'FST_SIPWS_BAD_DUMP_ORDER' }, name)
      }
      for (const conn of conns.slice(10)) s.edge.registry.remove(conn)
      assert.deepEqual((await answer(methods, 'ws.dump', ['id_hash']) as { info: unknown }).info, { wscounter: 10, truncated: 'no' })
    } finally {
      for (const conn of conns) s.edge.registry.remove(conn)
    }
  })

  test('cluster.send and cluster.close: the data, then the code and reason, each of its type; delivered to the connection', async (t) => {
    const { s, methods } = await methodsOn(t)
    const ws = await connect(s.url)
    const id = s.edge.server.dump().connections[0].id
    for (const params of [[id], [id, 42], [id, Buffer.from('x')]]) assert.deepEqual(await answer(methods, 'cluster.send', params), INVALID)
    const message = once(ws, 'message')
    assert.deepEqual(await answer(methods, 'cluster.send', [id, 'NOTIFY']), { delivered: true })
    assert.equal(String((await message)[0]), 'NOTIFY')
    const ping = once(ws, 'ping')
    assert.deepEqual(await answer(methods, 'cluster.ping', [id]), { delivered: true })
    await ping
    for (const params of [[id, '4000'], [id, 4000, 7], [id, null]]) assert.deepEqual(await answer(methods, 'cluster.close', params), INVALID, JSON.stringify(params))
    const gone = closed(ws)
    assert.deepEqual(await answer(methods, 'cluster.close', [id, 4000, 'bye']), { closed: true })
    assert.deepEqual(await gone, { code: 4000, reason: 'bye' })
  })

  test('cluster.nodes and cluster.stats: this process alone', async (t) => {
    const { s, methods } = await methodsOn(t)
    const ws = await connect(s.url)
    const nodes = await answer(methods, 'cluster.nodes', []) as Array<{ instance: string, self: boolean, connections: number }>
    assert.deepEqual(nodes.map((n) => [n.instance, n.self, n.connections]), [[s.cluster.instance, true, 1]])
    const stats = await answer(methods, 'cluster.stats', []) as { total: unknown, nodes: Record<string, unknown>, missing: unknown[] }
    assert.deepEqual(stats, { total: s.edge.server.statistics(), nodes: { [s.cluster.instance]: s.edge.server.statistics() }, missing: [] })
    ws.terminate()
  })

  test('ws.disable and ws.enable switch the lifecycle; ws.drain answers at once with what it will close', async (t) => {
    const { s, methods } = await methodsOn(t)
    assert.deepEqual(await answer(methods, 'ws.disable', []), {})
    assert.equal(s.edge.lifecycle.enabled, false)
    assert.deepEqual(await answer(methods, 'ws.enable', []), {})
    assert.equal(s.edge.lifecycle.enabled, true)
    for (const within of ['100', -1, 2.5, {}, Number.NaN]) assert.deepEqual(await answer(methods, 'ws.drain', [within]), INVALID, String(within))
    assert.equal(s.edge.lifecycle.leavingRefusal(), null, 'a refused drain starts nothing')
    const clients = await Promise.all([connect(s.url), connect(s.url)])
    const seen = Promise.all(clients.map(closed))
    const result = methods['ws.drain']([200])
    assert.deepEqual(result, { connections: 2, within: 200 }, 'an answer, not a promise of one')
    assert.equal(s.edge.lifecycle.leavingRefusal()?.status, 503)
    for (const r of await seen) assert.deepEqual(r, { code: 1001, reason: 'Going Away' })
    assert.deepEqual(await answer(methods, 'ws.enable', []), {})
    assert.equal(s.edge.lifecycle.leavingRefusal(), null, 'ws.enable ends the drain')
    await s.edge.registry.whenEmpty()
    assert.deepEqual(await answer(methods, 'ws.drain', []), { connections: 0, within: 0 }, 'within defaults to 0')
  })

  test('stats.get_statistics with no selector is "all"', async (t) => {
    const { s, methods } = await methodsOn(t)
    const all = await answer(methods, 'stats.get_statistics', [])
    assert.deepEqual(all, statisticsLines(s.edge.server.statistics(), ['all']))
    assert.equal((all as string[]).length, Object.keys(s.edge.server.statistics()).length)
  })
})

describe('statisticsLines', () => {
  const stats = { ws_b: 2, ws_a: 1, ws_sip_c: 3 }

  test('all, or the websocket: group: every statistic as sorted "websocket:<name> = <n>" lines', () => {
    const every = ['websocket:ws_a = 1', 'websocket:ws_b = 2', 'websocket:ws_sip_c = 3']
    assert.deepEqual(statisticsLines(stats, ['all']), every)
    assert.deepEqual(statisticsLines(stats, ['websocket:']), every)
  })

  test('names with or without the group, once each and in sorted order; unknown names and non-strings are passed over', () => {
    assert.deepEqual(statisticsLines(stats, ['websocket:ws_sip_c', 'ws_a', 'ws_a', 'ws_nope', 'websocket:nope', 7, null, { all: true }]), ['websocket:ws_a = 1', 'websocket:ws_sip_c = 3'])
    assert.deepEqual(statisticsLines(stats, ['all', 'ws_a']), statisticsLines(stats, ['all']), 'a name inside "all" is not repeated')
    assert.deepEqual(statisticsLines(stats, ['websocket']), [], 'the group needs its colon, as in Kamailio')
    assert.deepEqual(statisticsLines(stats, []), [])
    assert.deepEqual(statisticsLines({}, ['all']), [])
  })

  test('names that look like Object\'s own properties are no statistics', () => {
    assert.deepEqual(statisticsLines(stats, ['toString', 'constructor', '__proto__', 'hasOwnProperty']), [])
  })
})
