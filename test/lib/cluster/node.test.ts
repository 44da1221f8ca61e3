import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, describe, test } from 'node:test'
import Fastify from 'fastify'
import IORedis from 'ioredis'
import WebSocket from 'ws'
import sipWs, { type WsClosedEvent } from '../../../lib'
import { idPrefix } from '../../../lib/cluster/ids'
import { RedisCluster } from '../../../lib/cluster/node'
import { redisPair } from '../../../lib/cluster/redis'
import { NO_CONNECTIONS } from '../../../lib/cluster/seam'
import { encode, encodeAnswer, SEND_TEXT } from '../../../lib/cluster/wire'
import { recordedLog } from '../../helpers/cluster-parts'
import { clusterOf } from '../../helpers/cluster'
import { until, within } from '../../helpers/pool'
import { startRedis, type RedisServer } from '../../helpers/redis'
import { connect, startApp, type Started } from '../../helpers/server'
import { reportedSetUp } from '../../helpers/set-up'

const LATE = 3000

/** The id of the connection whose client is `ws` (found by its local port in the server's dump). */
function idOf (s: Started, ws: WebSocket): number {
  const port = (ws as unknown as { _socket: { localPort: number } })._socket.localPort
  const entry = s.app.wsDump().connections.find((c) => c.remotePort === port)
  assert.ok(entry !== undefined, 'connection listed')
  return entry.id
}

async function nextText (ws: WebSocket): Promise<string> {
  const [data] = await within(once(ws, 'message'), 5000, () => 'a message') as [Buffer]
  return data.toString()
}

describe('cluster mode: one registry over several nodes', () => {
  let redis: RedisServer
  let a: Started
  let b: Started
  const closedOnB: WsClosedEvent[] = []

  before(reportedSetUp(async () => {
    redis = await startRedis()
    a = await startApp({ cluster: { redis: redis.url, nodeTimeout: 2000 }, rpc: { path: '/RPC' } })
    b = await startApp({ cluster: { redis: redis.url, nodeTimeout: 2000 } }, (app) => {
      app.addWsHook('websocket:closed', (e) => { closedOnB.push(e) })
    })
    await clusterOf(() => a.app.wsCluster.nodes(), 2)
    await clusterOf(() => b.app.wsCluster.nodes(), 2)
  }))
  after(async () => {
    await a?.app.close()
    await b?.app.close()
    await redis?.stop()
  })

  test('ids are safe integers that name their node; each node sees the other', async () => {
    const [wa, wb] = await Promise.all([connect(a.url), connect(b.url)])
    const [ia, ib] = [idOf(a, wa), idOf(b, wb)]
    for (const id of [ia, ib]) assert.ok(Number.isSafeInteger(id) && id > 0, String(id))
    assert.notEqual(idPrefix(ia), idPrefix(ib))
    const nodes = a.app.wsCluster.nodes()
    assert.deepEqual(nodes.map((n) => n.self), [true, false])
    assert.equal(nodes[1].instance, b.app.wsCluster.instance)
    assert.ok(nodes[1].prefixes.includes(idPrefix(ib)))
    wa.terminate(); wb.terminate()
  })

  test('wsSend, wsPing, wsPong and wsClose take an id of another node', async () => {
    const ws = await connect(b.url)
    const id = idOf(b, ws)
    assert.equal(a.app.wsSend(id, 'text from a'), true)
    assert.equal(await nextText(ws), 'text from a')
    const binary = once(ws, 'message')
    assert.equal(a.app.wsSend(id, Buffer.from([0, 1, 2])), true)
    const [data, isBinary] = await within(binary, 5000, () => 'the binary message') as [Buffer, boolean]
    assert.deepEqual([[...data], isBinary], [[0, 1, 2], true])
    const ping = once(ws, 'ping')
    assert.equal(a.app.wsPing(id), true)
    assert.match(((await within(ping, 5000, () => 'the Ping')) as [Buffer])[0].toString(), /^fastify-sip-ws/)
    const pong = once(ws, 'pong')
    assert.equal(a.app.wsPong(id), true)
    await within(pong, 5000, () => 'the Pong')
    const closed = once(ws, 'close')
    assert.equal(a.app.wsClose(id, 4001, 'from another node'), true)
    const [code, reason] = await within(closed, 5000, () => 'the close') as [number, Buffer]
    assert.deepEqual([code, reason.toString()], [4001, 'from another node'])
    assert.throws(() => a.app.wsClose(id, 1005), { code: 'FST_SIPWS_INVALID_CLOSE' }, 'checked before anything is published')
  })

  test('wsCluster.send and close confirm: true once the owner took it, false for a closed id or a node nobody runs', async () => {
    const ws = await connect(b.url)
    const id = idOf(b, ws)
    const got = nextText(ws)
    assert.equal(await a.app.wsCluster.send(id, 'confirmed'), true)
    assert.equal(await got, 'confirmed')
    // Another node's id gets the checks a local one gets, before anything is published.
    await assert.rejects(a.app.wsCluster.send(id, 123 as unknown as string), { code: 'FST_SIPWS_INVALID_ARGUMENT' })
    await assert.rejects(a.app.wsCluster.send(id, null as unknown as string), { code: 'FST_SIPWS_INVALID_ARGUMENT' })
    await assert.rejects(a.app.wsCluster.close(1.5), { code: 'FST_SIPWS_BAD_CONNECTION_ID' }, 'no integer: no node holds it')
    await assert.rejects(a.app.wsCluster.close(id, 1005), { code: 'FST_SIPWS_INVALID_CLOSE' })
    assert.equal(b.app.wsConnection(id)?.state, 'OPEN')
    assert.equal(await a.app.wsCluster.ping(id), true)
    const closed = once(ws, 'close')
    assert.equal(await a.app.wsCluster.close(id, 4002, 'bye'), true)
    await within(closed, 5000, () => 'the close')
    await until(() => b.app.wsConnection(id) === undefined, 5000, () => 'the connection to go', 0)
    assert.equal(await a.app.wsCluster.send(id, 'too late'), false, 'the owner says it is gone')
    assert.equal(await a.app.wsCluster.close(id), false)
    // A lease no node holds: nobody to ask.
    assert.equal(await a.app.wsCluster.send(id + 2 ** 23 * 5, 'nobody'), false)
    // Unknown is not dead: the plain call publishes (its drop is logged) and cannot say more.
    assert.equal(a.app.wsSend(id + 2 ** 23 * 5, 'nobody'), true)
    // Local ids answer without Redis.
    const local = await connect(a.url)
    const localId = idOf(a, local)
    const localGot = nextText(local)
    assert.equal(await a.app.wsCluster.send(localId, 'local'), true)
    assert.equal(await localGot, 'local')
    local.terminate()
  })

  test('10,000 sends from one node reach a connection on another in order', async () => {
    const COUNT = 10_000
    const ws = await connect(b.url)
    const id = idOf(b, ws)
    const seen: number[] = []
    const all = new Promise<void>((resolve) => {
      ws.on('message', (data: Buffer) => { seen.push(Number(data.toString())); if (seen.length === COUNT) resolve() })
    })
    const started = performance.now()
    for (let i = 0; i < COUNT; i++) assert.ok(a.app.wsSend(id, String(i)))
    await within(all, 20_000, () => `${seen.length} of ${COUNT} arrived`)
    const ms = performance.now() - started
    assert.deepEqual(seen, Array.from({ length: COUNT }, (_, i) => i))
    // One subscriber per lease channel: each send is one delivery, however many nodes there are.
    const probe = new IORedis(redis.url)
    try {
      const [, subscribers] = await probe.pubsub('NUMSUB', `sipws:c:${idPrefix(id)}`) as [string, number]
      assert.equal(subscribers, 1)
    } finally { probe.disconnect() }
    console.log(`# ${COUNT} cross-node sends in order in ${ms.toFixed(0)} ms`)
    ws.terminate()
  })

  test('wsCluster.dump merges the first 50 of every node in each order; stats sum every node', async () => {
    const clients = [...await Promise.all(Array.from({ length: 30 }, async () => await connect(a.url))), ...await Promise.all(Array.from({ length: 30 }, async () => await connect(b.url)))]
    // Use three on B last, so used_asc starts with them.
    const recent = clients.slice(-3)
    for (const ws of recent) { ws.send('x'); await new Promise((resolve) => setTimeout(resolve, 5)) }
    await until(() => b.app.wsStats().ws_received_frames >= 3, 5000, () => 'the messages', 0)
    const all = [...a.app.wsDump().connections, ...b.app.wsDump().connections]
    for (const order of ['id_hash', 'used_asc', 'used_desc'] as const) {
      const dump = await a.app.wsCluster.dump(order)
      assert.equal(dump.wscounter, 60)
      assert.equal(dump.truncated, true)
      assert.equal(dump.connections.length, 50)
      assert.deepEqual([dump.answered, dump.missing], [2, []])
      if (order === 'id_hash') assert.deepEqual(dump.connections.map((c) => c.id), all.map((c) => c.id).sort((x, y) => x - y).slice(0, 50))
      else {
        const times = dump.connections.map((c) => c.lastUsed)
        assert.deepEqual(times, [...times].sort((x, y) => order === 'used_asc' ? y - x : x - y))
      }
    }
    const newest = (await a.app.wsCluster.dump('used_asc')).connections.slice(0, 3).map((c) => c.id)
    assert.deepEqual(newest.sort(), recent.map((ws) => idOf(b, ws)).sort())
    await assert.rejects(a.app.wsCluster.dump('nope' as never), { code: 'FST_SIPWS_BAD_DUMP_ORDER' })
    const stats = await a.app.wsCluster.stats()
    assert.equal(stats.total.ws_current_connections, 60)
    assert.deepEqual(Object.keys(stats.nodes).sort(), [a.app.wsCluster.instance, b.app.wsCluster.instance].sort())
    assert.equal(stats.nodes[b.app.wsCluster.instance].ws_current_connections, 30)
    for (const ws of clients) ws.terminate()
  })

  test('RPC: cluster.nodes, cluster.dump, cluster.stats, cluster.send and cluster.close', async () => {
    const rpc = async (method: string, params?: unknown[]): Promise<{ result?: any, error?: { code: number, message: string } }> => {
      const res = await fetch(`http://127.0.0.1:${a.port}/RPC`, { method: 'POST', body: JSON.stringify({ jsonrpc: '2.0', method, params, id: 1 }), signal: AbortSignal.timeout(5000) })
      return await res.json() as { result?: any, error?: { code: number, message: string } }
    }
    const ws = await connect(b.url)
    const id = idOf(b, ws)
    assert.equal((await rpc('cluster.nodes')).result.length, 2)
    const dump = (await rpc('cluster.dump', ['id_hash'])).result
    assert.ok(dump.connections.some((line: string) => line.startsWith(`${id}: ws:127.0.0.1:`)), JSON.stringify(dump))
    assert.equal(dump.info.answered, 2)
    assert.equal((await rpc('cluster.stats')).result.total.ws_current_connections, 1)
    const got = nextText(ws)
    assert.deepEqual((await rpc('cluster.send', [id, 'over rpc'])).result, { delivered: true })
    assert.equal(await got, 'over rpc')
    assert.deepEqual((await rpc('cluster.send', [id])).error, { code: 500, message: 'Invalid Parameters' })
    const closed = once(ws, 'close')
    assert.deepEqual((await rpc('cluster.close', [id, 4003, 'rpc'])).result, { closed: true })
    assert.equal(((await within(closed, 5000, () => 'the close')) as [number])[0], 4003)
    // Kamailio's per-node methods take any node's id too.
    const again = await connect(b.url)
    const pinged = once(again, 'ping')
    assert.deepEqual((await rpc('ws.ping', [idOf(b, again)])).result, {})
    await within(pinged, 5000, () => 'the ping')
    again.terminate()
  })

  test('closed events on the owner say by "local" for a close from another node', async () => {
    const ws = await connect(b.url)
    const id = idOf(b, ws)
    const closed = once(ws, 'close')
    a.app.wsClose(id, 4004, 'x')
    await within(closed, 5000, () => 'the close')
    await until(() => closedOnB.some((e) => e.id === id), 5000, () => 'the closed event', 0)
    assert.deepEqual(closedOnB.filter((e) => e.id === id).map((e) => [e.by, e.code]), [['local', 4004]])
  })
})

describe('cluster options', () => {
  test('bad cluster options fail register naming them', async () => {
    for (const [name, cluster] of [
      ['cluster.redis', { redis: 'http://127.0.0.1:6379' }],
      ['cluster.nodeTimeout', { redis: 'redis://127.0.0.1:1', nodeTimeout: 3 }],
      ['cluster.prefix', { redis: 'redis://127.0.0.1:1', prefix: 'has space' }],
      ['cluster.requestTimeout', { redis: 'redis://127.0.0.1:1', requestTimeout: 1 }]
    ] as const) {
      const app = Fastify()
      await assert.rejects(async () => { await app.register(sipWs, { cluster: cluster as never }); await app.ready() }, (err: Error & { code?: string }) => {
        assert.equal(err.code, 'FST_SIPWS_INVALID_OPTION')
        assert.ok(err.message.includes(`"${name}"`), err.message)
        return true
      })
      await app.close()
    }
    // Every option is checked before the node reaches for Redis: the mistake is named, not Redis.
    const app = Fastify()
    await assert.rejects(async () => {
      await app.register(sipWs, { cluster: { redis: 'redis://127.0.0.1:1' }, lwsc: { reconnectBackoffMin: 500, reconnectBackoffMax: 100 } })
      await app.ready()
    }, { code: 'FST_SIPWS_INVALID_OPTION', message: /"lwsc\.reconnectBackoffMax"/ })
    await app.close()
  })

  test('a Redis nobody answers on fails register with a typed error within connectTimeout', async () => {
    const app = Fastify()
    const started = performance.now()
    await assert.rejects(async () => { await app.register(sipWs, { cluster: { redis: 'redis://127.0.0.1:1', connectTimeout: 500 } }); await app.ready() }, { code: 'FST_SIPWS_CLUSTER_UNAVAILABLE' })
    assert.ok(performance.now() - started < 500 + LATE)
    await app.close()
  })

  test('with cluster mode off, wsCluster works on this process alone', async () => {
    const s = await startApp()
    try {
      const ws = await connect(s.url)
      const id = s.app.wsDump().connections[0].id
      const got = nextText(ws)
      assert.equal(await s.app.wsCluster.send(id, 'alone'), true)
      assert.equal(await got, 'alone')
      assert.equal(await s.app.wsCluster.send(id + 1, 'nobody'), false)
      const dump = await s.app.wsCluster.dump()
      assert.deepEqual([dump.wscounter, dump.answered, dump.missing, dump.connections[0].id], [1, 1, [], id])
      assert.equal((await s.app.wsCluster.stats()).total.ws_current_connections, 1)
      assert.deepEqual(s.app.wsCluster.nodes().map((n) => n.self), [true])
      ws.terminate()
    } finally { await s.app.close() }
  })
})

describe('a node and what else is on its channels', () => {
  test('garbage on the control and lease channels is dropped: the node lives on and still answers views', async () => {
    const redis = await startRedis()
    const logged = recordedLog()
    const settings = { prefix: 'gb', nodeTimeout: 1000, requestTimeout: 500, connectTimeout: 5000 }
    const a = new RedisCluster(redisPair(redis.url), settings, logged.log, { nodeDown: () => {}, rejoined: () => {} })
    const b = new RedisCluster(redisPair(redis.url), settings, logged.log, { nodeDown: () => {}, rejoined: () => {} })
    const probe = new IORedis(redis.url)
    const thrown: unknown[] = []
    const onThrown = (err: unknown): void => { thrown.push(err) }
    process.on('uncaughtException', onThrown)
    try {
      await a.start(NO_CONNECTIONS)
      await b.start(NO_CONNECTIONS)
      await clusterOf(() => a.nodes(), 2, 5000)
      await clusterOf(() => b.nodes(), 2, 5000)
      const lease = `gb:c:${a.nodes()[0].prefixes[0]}`
      for (const junk of ['not json', 'null', '[]', '42', '{"t":"bye"}', '{"t":"hb","i":7}', '{"t":"q","q":"dump","o":"bogus","r":1,"to":1}', '{"t":"q","q":"stats","r":-1,"to":1}']) {
        await probe.publish('gb:ctl', junk)
      }
      for (const junk of [Buffer.from('hello'), Buffer.alloc(0), encode(SEND_TEXT, 1.5 as number, 1, 1, 'x').fill(0xff, 1, 9), encodeAnswer(123456, true, 'null'), encode(SEND_TEXT, 1, 1, 1, 'nobody')]) {
        await probe.publish(lease, junk)
      }
      // Published after the junk on the same channel, the view question is heard after it: the node is alive.
      const { answers, missing } = await within(b.ask({ q: 'stats' }, { instance: b.instance }), 5000, () => 'the view')
      assert.deepEqual([answers.map((x) => x.instance).sort(), missing], [[a.instance, b.instance].sort(), []])
      assert.equal(a.nodes().length, 2)
      assert.deepEqual(thrown, [])
      assert.ok(logged.entries.some((e) => e.msg === 'fastify-sip-ws: cluster: malformed view question dropped'))
    } finally {
      process.off('uncaughtException', onThrown)
      probe.disconnect()
      await a.stop()
      await b.stop()
      await a.stop()
      await redis.stop()
    }
  })
})

