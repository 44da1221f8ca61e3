import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { ClusterNodeInfo, ClusterRejoinedEvent } from '../../lib'
import { clusterOf } from '../helpers/cluster'
import { assertNothingLost, described, startTraffic, type TrafficNode } from '../helpers/cluster-traffic'
import { until } from '../helpers/pool'
import { DOWN_AFTER, isMaster, startSentinels, type SentinelSet } from '../helpers/sentinel'
import { loggedApp, startApp, type Started } from '../helpers/server'
import { reportedSetUp } from '../helpers/set-up'

const CLUSTER = { nodeTimeout: 1500, requestTimeout: 500 }
// The goal: traffic back within 2 s of the new master answering; the rest is room for a loaded machine.
const BACK_WITHIN = 2000

describe('Redis Sentinel: the master killed under traffic', () => {
  let set: SentinelSet
  const nodes: Array<Started & TrafficNode> = []
  const downs: ClusterNodeInfo[] = []
  const rejoins: ClusterRejoinedEvent[] = []
  before(reportedSetUp(async () => {
    set = await startSentinels()
    for (let i = 0; i < 2; i++) {
      const logged = loggedApp('warn')
      const started = await startApp({ cluster: { redis: set.options, ...CLUSTER } }, (app) => {
        app.addWsHook('cluster:node-down', (node) => { downs.push(node) })
        app.addWsHook('cluster:rejoined', (event) => { rejoins.push(event) })
      }, logged.fastifyOptions)
      nodes.push({ ...started, entries: logged.entries })
    }
    await clusterOf(() => nodes[0].app.wsCluster.nodes(), 2)
    await clusterOf(() => nodes[1].app.wsCluster.nodes(), 2)
  }))
  after(async () => {
    for (const node of nodes) await node.app.close()
    await set?.stop()
  })

  test('a failover loses nothing silently, calls no live node gone, and traffic is back within 2 s of the new master', async (t) => {
    const [a, b] = nodes
    assert.equal(await set.masterPort(), set.master.port)
    const traffic = await startTraffic(a, b, 20, 5000)
    // Traffic flows before the failover.
    const started = performance.now()
    await until(() => traffic.backAfter(started) !== null, 5000, () => 'traffic before the failover')
    await set.master.kill('SIGKILL')
    const killed = performance.now()
    // The new master is reachable once the replica says it is one (the sentinels promoted it).
    await until(async () => await isMaster(set.replica.port), 30_000, () => 'the replica to be promoted', 20)
    const promoted = performance.now()
    await until(async () => await set.masterPort() === set.replica.port, 10_000, () => 'the sentinels to name the new master', 20)
    const named = performance.now()
    const back = await traffic.backWithin(promoted, 1000)
    const counts = await traffic.stop()
    t.diagnostic(`master killed; replica promoted ${(promoted - killed).toFixed(0)} ms later (down-after ${DOWN_AFTER} ms), named by the sentinels ${(named - promoted).toFixed(0)} ms after that; traffic back both ways ${back.toFixed(0)} ms after the promotion`)
    t.diagnostic(described(counts))
    t.diagnostic(`node-down ${downs.length}, rejoined ${JSON.stringify(rejoins)}`)
    assert.equal(await set.masterPort(), set.replica.port, 'the sentinels name the replica as master')
    assertNothingLost(counts)
    assert.deepEqual(downs, [], 'no node counted gone for a failover')
    assert.ok(back <= BACK_WITHIN, `traffic back ${back.toFixed(0)} ms after the new master`)
  })
})
