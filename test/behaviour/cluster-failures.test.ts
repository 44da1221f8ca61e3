import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, describe, test } from 'node:test'
import IORedis from 'ioredis'
import type { ClusterNodeInfo, DumpResult } from '../../lib'
import { idPrefix, leaseOf } from '../../lib/cluster/ids'
import { clusterOf, startNode, type NodeEvent, type NodeProcess } from '../helpers/cluster'
import { assertNothingLost, described, startTraffic, type TrafficNode } from '../helpers/cluster-traffic'
import { until, within } from '../helpers/pool'
import { startRedis, type RedisServer } from '../helpers/redis'
import { connect, loggedApp, startApp, type Started } from '../helpers/server'
import { reportedSetUp } from '../helpers/set-up'

// Short enough for a quick test, long enough that a loaded 2-core machine does not miss heartbeats.
const NODE_TIMEOUT = 1500
const REQUEST_TIMEOUT = 500
const LATE = 2000
const CLUSTER = { nodeTimeout: NODE_TIMEOUT, requestTimeout: REQUEST_TIMEOUT }

async function firstId (node: NodeProcess): Promise<number> {
  const dump = await node.call<DumpResult>('dump')
  return dump.connections[0].id
}

describe('a node that dies or freezes', () => {
  let redis: RedisServer
  before(reportedSetUp(async () => { redis = await startRedis() }))
  after(async () => { await redis?.stop() })

  test('SIGKILL: known gone within nodeTimeout, cluster:node-down once on each survivor, sends to its ids false', async (t) => {
    const downs: Array<{ node: ClusterNodeInfo, at: number }> = []
    const observer = await startApp({ cluster: { redis: redis.url, ...CLUSTER } }, (app) => { app.addWsHook('cluster:node-down', (node) => { downs.push({ node, at: Date.now() }) }) })
    const victim = await startNode(redis.url, { cluster: CLUSTER } as never)
    const survivor = await startNode(redis.url, { cluster: CLUSTER } as never)
    try {
      await clusterOf(() => observer.app.wsCluster.nodes(), 3)
      // The survivor must have heard the victim too, or it has nobody to miss.
      await until(async () => (await survivor.call<unknown[]>('nodes')).length >= 3, 10_000, () => 'the survivor to see every node')
      const ws = await connect(victim.url)
      ws.on('error', () => {})
      const id = await firstId(victim)
      assert.equal(observer.app.wsSend(id, 'alive'), true)
      const killedAt = Date.now()
      victim.signal('SIGKILL')
      const seen = await survivor.next((e) => e.event === 'node-down', NODE_TIMEOUT + LATE, 'node-down on the survivor')
      await until(() => downs.length > 0, NODE_TIMEOUT + LATE, () => 'node-down on the observer', 20)
      const detected = downs[0].at - killedAt
      t.diagnostic(`SIGKILLed node known gone after ${detected} ms on one survivor, ${(seen.at as number) - killedAt} ms on the other (nodeTimeout ${NODE_TIMEOUT})`)
      assert.ok(detected <= NODE_TIMEOUT + 500, `detected after ${detected} ms`)
      assert.equal(downs[0].node.instance, victim.instance)
      assert.equal((seen.node as ClusterNodeInfo).instance, victim.instance)
      assert.equal(observer.app.wsSend(id, 'dead'), false)
      assert.equal(await observer.app.wsCluster.send(id, 'dead'), false)
      assert.equal(observer.app.wsCluster.nodes().length, 2)
      // Once on each: a later sweep does not fire again.
      await new Promise((resolve) => setTimeout(resolve, NODE_TIMEOUT))
      assert.equal(downs.length, 1)
      assert.equal(survivor.events.filter((e) => e.event === 'node-down').length, 1)
    } finally {
      await victim.stop()
      await survivor.stop()
      await observer.app.close()
    }
  })

  test('SIGSTOP: wsCluster.dump answers within requestTimeout with what it has and names the frozen node', async (t) => {
    const observer = await startApp({ cluster: { redis: redis.url, ...CLUSTER } })
    const frozen = await startNode(redis.url, { cluster: CLUSTER } as never)
    try {
      await clusterOf(() => observer.app.wsCluster.nodes(), 2)
      const clients = await Promise.all([connect(observer.url), connect(frozen.url)])
      const whole = await observer.app.wsCluster.dump()
      assert.deepEqual([whole.wscounter, whole.answered], [2, 2])
      frozen.signal('SIGSTOP')
      const started = performance.now()
      const partial = await within(observer.app.wsCluster.dump(), REQUEST_TIMEOUT + LATE, () => 'the dump')
      const took = performance.now() - started
      t.diagnostic(`dump with a frozen node: ${took.toFixed(0)} ms (requestTimeout ${REQUEST_TIMEOUT})`)
      assert.ok(took >= REQUEST_TIMEOUT - 25 && took < REQUEST_TIMEOUT + LATE)
      assert.deepEqual([partial.wscounter, partial.answered], [1, 1])
      assert.deepEqual(partial.missing.map((m) => m.instance), [frozen.instance])
      frozen.signal('SIGCONT')
      for (const ws of clients) ws.terminate()
    } finally {
      frozen.signal('SIGCONT')
      await frozen.stop()
      await observer.app.close()
    }
  })
})

describe('a node that stalls (SIGSTOP past 2 × nodeTimeout, then SIGCONT)', () => {
  let redis: RedisServer
  before(reportedSetUp(async () => { redis = await startRedis() }))
  after(async () => { await redis?.stop() })

  /** A node in this process that records its hooks and logs. */
  async function observed (): Promise<Started & TrafficNode & { downs: ClusterNodeInfo[] }> {
    const logged = loggedApp('warn')
    const downs: ClusterNodeInfo[] = []
    const started = await startApp({ cluster: { redis: redis.url, ...CLUSTER } }, (app) => {
      app.addWsHook('cluster:node-down', (node) => { downs.push(node) })
    }, logged.fastifyOptions)
    return { ...started, entries: logged.entries, downs }
  }

  test('no failure between the two others, no live node counted gone; the stalled one rejoins and its users are reachable at once', async (t) => {
    const STALL = 2 * NODE_TIMEOUT + 500
    const [a, b] = [await observed(), await observed()]
    const stalled = await startNode(redis.url, { cluster: CLUSTER } as never)
    try {
      await clusterOf(() => a.app.wsCluster.nodes(), 3)
      await clusterOf(() => b.app.wsCluster.nodes(), 3)
      await until(async () => (await stalled.call<unknown[]>('nodes')).length === 3, 10_000, () => 'the stalled node to see every node')
      const [wa, ws] = [await connect(a.url), await connect(stalled.url)]
      const [ida, ids] = [a.app.wsDump('used_asc').connections[0].id, await firstId(stalled)]
      const traffic = await startTraffic(a, b, 20, 5000)
      stalled.signal('SIGSTOP')
      const stoppedAt = Date.now()
      // Counted gone by the others once Redis confirms it: its presence ran out.
      const down = await within((async () => { await until(() => a.downs.length > 0 && b.downs.length > 0, STALL, () => 'node-down on both', 20); return Date.now() })(), STALL + LATE, () => 'node-down')
      const left = STALL - (Date.now() - stoppedAt)
      if (left > 0) await new Promise((resolve) => setTimeout(resolve, left))
      stalled.signal('SIGCONT')
      const contAt = performance.now()
      // Its users are reachable from the others again, and it reaches them.
      await until(async () => await a.app.wsCluster.send(ids, 'reach the stalled node').catch(() => false), 10_000, () => 'the stalled node\'s user to be reachable', 10)
      const reachable = performance.now() - contAt
      await until(async () => await stalled.call<boolean>('clusterSend', ida, 'from the stalled node').catch(() => false), 10_000, () => 'the stalled node to reach the others', 10)
      const reaches = performance.now() - contAt
      const rejoined = await stalled.next((e: NodeEvent) => e.event === 'rejoined', 10_000, 'cluster:rejoined on the stalled node')
      // A nodeTimeout and more of traffic after the stall, then count.
      await traffic.backWithin(contAt, NODE_TIMEOUT + 500)
      const counts = await traffic.stop()
      const event = rejoined.rejoined as { instance: string, reason: string, gapMs: number }
      t.diagnostic(`stalled ${STALL} ms (nodeTimeout ${NODE_TIMEOUT}); counted gone after ${down - stoppedAt} ms; after SIGCONT its user reachable in ${reachable.toFixed(0)} ms, it reached the others in ${reaches.toFixed(0)} ms; rejoined ${JSON.stringify(event)}`)
      t.diagnostic(`between the two others: ${described(counts)}`)
      assert.deepEqual([counts.plain.false, counts.confirmed.false, counts.confirmed.rejected], [0, 0, {}], 'no failure between the nodes that never stopped')
      assert.equal(counts.lostSilently, 0)
      assert.equal(counts.plain.delivered, counts.plain.sent)
      assert.equal(counts.confirmed.true, counts.confirmed.sent)
      assert.deepEqual([a.downs.map((n) => n.instance), b.downs.map((n) => n.instance)], [[stalled.instance], [stalled.instance]], 'only the stalled node was counted gone, once, when Redis said so')
      assert.deepEqual(stalled.events.filter((e) => e.event === 'node-down'), [], 'the stalled node counted nobody gone')
      assert.deepEqual([event.instance, event.reason], [stalled.instance, 'lease-expired'])
      assert.ok(event.gapMs >= STALL - NODE_TIMEOUT / 4, `gap ${event.gapMs} ms`)
      assert.equal(stalled.events.filter((e) => e.event === 'rejoined').length, 1, 'once')
      assert.ok(reachable <= 2000, `reachable ${reachable.toFixed(0)} ms after SIGCONT`)
      assert.equal((await stalled.call<unknown[]>('nodes')).length, 3)
      assert.equal(a.app.wsCluster.nodes().length, 3)
      wa.terminate(); ws.terminate()
    } finally {
      stalled.signal('SIGCONT')
      await stalled.stop()
      await a.app.close()
      await b.app.close()
    }
  })
})

describe('Redis restarted under traffic', () => {
  let redis: RedisServer
  before(reportedSetUp(async () => { redis = await startRedis() }))
  after(async () => { await redis?.stop() })

  test('nothing lost silently, no live connection called gone, traffic back within 2 s of Redis', async (t) => {
    const nodes: Array<Started & TrafficNode> = []
    const downs: string[] = []
    for (let i = 0; i < 2; i++) {
      const logged = loggedApp('warn')
      nodes.push({ ...await startApp({ cluster: { redis: redis.url, ...CLUSTER } }, (app) => { app.addWsHook('cluster:node-down', (n) => { downs.push(n.instance) }) }, logged.fastifyOptions), entries: logged.entries })
    }
    const [a, b] = nodes
    try {
      await clusterOf(() => a.app.wsCluster.nodes(), 2)
      const traffic = await startTraffic(a, b, 20, 5000)
      const started = performance.now()
      await until(() => traffic.backAfter(started) !== null, 5000, () => 'traffic before the restart')
      await redis.kill('SIGKILL')
      const down = performance.now()
      // Down longer than nodeTimeout: every lease and presence has run out when it comes back (empty).
      await until(() => performance.now() - down > NODE_TIMEOUT + 100, 10_000, () => 'an outage longer than nodeTimeout', 50)
      await redis.restart()
      const back = performance.now()
      const recovered = await traffic.backWithin(back, 1000)
      const counts = await traffic.stop()
      t.diagnostic(`Redis down ${(back - down).toFixed(0)} ms; traffic back both ways ${recovered.toFixed(0)} ms after it answered`)
      t.diagnostic(described(counts))
      assertNothingLost(counts)
      assert.deepEqual(downs, [])
      assert.ok(recovered <= 2000, `back ${recovered.toFixed(0)} ms after Redis`)
    } finally {
      for (const node of nodes) await node.app.close()
    }
  })
})

describe('Redis goes away', () => {
  let redis: RedisServer
  let a: Started
  let b: Started
  const downs: string[] = []
  before(reportedSetUp(async () => {
    redis = await startRedis()
    a = await startApp({ cluster: { redis: redis.url, ...CLUSTER } }, (app) => {
      app.addWsHook('websocket:message', (m) => { app.wsSend(m.id, m.data) })
      app.addWsHook('cluster:node-down', (n) => { downs.push(n.instance) })
    })
    b = await startApp({ cluster: { redis: redis.url, ...CLUSTER } }, (app) => {
      app.addWsHook('websocket:message', (m) => { app.wsSend(m.id, m.data) })
    })
    await clusterOf(() => a.app.wsCluster.nodes(), 2)
  }))
  after(async () => {
    await a?.app.close()
    await b?.app.close()
    await redis?.stop()
  })

  test('killed during traffic: no local connection drops, remote calls fail at once, the node is whole again soon after Redis returns', async (t) => {
    // 20 clients on each node echo all along; one on B is the remote target.
    const clients = [...await Promise.all(Array.from({ length: 20 }, async () => await connect(a.url))), ...await Promise.all(Array.from({ length: 20 }, async () => await connect(b.url)))]
    let closes = 0
    let echoes = 0
    for (const ws of clients) {
      ws.on('close', () => { closes++ })
      ws.on('message', () => { echoes++; ws.send('again') })
      ws.send('start')
    }
    const target = await connect(b.url)
    const targetId = b.app.wsDump('used_asc').connections[0].id
    assert.equal(await a.app.wsCluster.send(targetId, 'before'), true)

    await redis.kill('SIGKILL')
    const down = performance.now()
    // Local traffic goes on: echoes keep coming while Redis is dead.
    const before = echoes
    await until(() => echoes >= before + 2000, 10_000, () => 'local echoes during the outage', 0)
    const failStarted = performance.now()
    await assert.rejects(a.app.wsCluster.send(targetId, 'during'), { code: 'FST_SIPWS_CLUSTER_UNAVAILABLE' })
    assert.ok(performance.now() - failStarted < 50, 'fails fast, no queue')
    assert.equal(a.app.wsSend(targetId, 'during'), false)
    // Longer than nodeTimeout: still nobody is declared gone, since nobody could hear anybody.
    await new Promise((resolve) => setTimeout(resolve, NODE_TIMEOUT + 500))

    await redis.restart()
    const back = performance.now()
    let recovered = 0
    for (let i = 0; i < 200; i++) {
      const ok = await a.app.wsCluster.send(targetId, 'after').catch(() => false)
      if (ok) { recovered = performance.now() - back; break }
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    t.diagnostic(`Redis down ${(back - down).toFixed(0)} ms; cross-node send back ${recovered.toFixed(0)} ms after Redis restarted; ${echoes} local echoes meanwhile; ${closes} connections dropped`)
    assert.ok(recovered > 0 && recovered < 2000 + LATE, `recovered after ${recovered.toFixed(0)} ms`)
    assert.equal(closes, 0, 'no local connection dropped')
    assert.deepEqual(downs, [], 'no node declared gone for a Redis outage')
    assert.equal(a.app.wsCluster.nodes().length, 2)
    for (const ws of [...clients, target]) { ws.removeAllListeners('message'); ws.terminate() }
  })

  test('after a Redis restart with slots taken by others: old ids still reach their connections, new nodes get other leases', async (t) => {
    const ws = await connect(b.url)
    const oldId = b.app.wsDump('used_asc').connections[0].id
    const oldPrefix = idPrefix(oldId)
    await redis.restart()
    // Another node grabbing B's slot before B can take it back: as a failover or a lease lost to a race.
    const probe = new IORedis(redis.url)
    await probe.set(`sipws:slot:${leaseOf(oldPrefix).slot}`, 'intruder 1', 'PX', 60_000)
    try {
      // B takes a new lease for new ids; the old connection keeps its id and channel.
      await within((async () => {
        for (;;) {
          const fresh = await connect(b.url)
          const id = b.app.wsDump('used_asc').connections[0].id
          fresh.terminate()
          if (idPrefix(id) !== oldPrefix) return
          await new Promise((resolve) => setTimeout(resolve, 100))
        }
      })(), 10_000, () => 'B to take another lease')
      const got = once(ws, 'message')
      await until(async () => await a.app.wsCluster.send(oldId, 'old id').catch(() => false), 5000, () => 'the old id to be reachable')
      assert.equal(((await got) as [Buffer])[0].toString(), 'old id')
      // A node started now never gets the old lease: its ids have another prefix.
      const c = await startNode(redis.url, { cluster: CLUSTER } as never)
      try {
        const cws = await connect(c.url)
        const cId = await firstId(c)
        t.diagnostic(`old lease ${JSON.stringify(leaseOf(oldPrefix))}, new node's ${JSON.stringify(leaseOf(idPrefix(cId)))}`)
        assert.notEqual(idPrefix(cId), oldPrefix)
        assert.equal(await a.app.wsCluster.send(oldId, 'still b'), true)
        assert.equal(c.events.filter((e) => e.event === 'message').length, 0)
        cws.terminate()
      } finally { await c.stop() }
    } finally {
      probe.disconnect()
      ws.terminate()
    }
  })
})

