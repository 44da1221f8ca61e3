import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import IORedis from 'ioredis'
import * as JsSIP from 'jssip'
import type { ClusterNodeInfo } from '../../lib'
import { NODE_TIMEOUT } from '../../example/cluster/link'
import { SipResponse } from '../../example/sip/message'
import { clusterOf } from '../helpers/cluster'
import { until } from '../helpers/pool'
import { jsonRpc } from '../helpers/json-rpc'
import { startRedis, type RedisServer } from '../helpers/redis'
import { runExample, type ExampleProcess } from './example-process'
import { RawSipClient, startExample, within, type Example } from './helpers'
import { incomingCall, incomingMessage, installNodeWebRtc, NO_MEDIA, registered, send, sessionEvent, stop, userAgent } from './jssip-node'
import { loadSipJs, nextMessage, peer, send as sipJsSend, type Peer, type SipJs } from './sipjs-node'
import { reportedSetUp } from '../helpers/set-up'

/** What a loaded 2-core machine may add to a bound. */
const LATE = 1000
const ROUNDS = 20

/** The Redis key of an AOR's bindings (example/redis-bindings.ts). */
const aorKey = (aor: string): string => `{sipws}:reg:aor:${aor}`

function median (values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y)
  return sorted[Math.floor(sorted.length / 2)]
}

describe('the example as a cluster: alice and carol on node A (in this process), bob and dave on node B (a process), one Redis', () => {
  let redis: RedisServer
  let inspect: IORedis
  let a: Example
  let b: ExampleProcess
  let bInstance: string
  let sip: SipJs
  let alice: JsSIP.UA
  let bob: JsSIP.UA
  let carol: Peer
  let dave: Peer
  const downs: Array<{ node: ClusterNodeInfo, at: number }> = []
  const downWaiters: Array<() => void> = []

  before(reportedSetUp(async () => {
    JsSIP.debug.disable()
    installNodeWebRtc()
    sip = await loadSipJs()
    redis = await startRedis()
    inspect = new IORedis(redis.url)
    a = await startExample({ redisUrl: redis.url, logger: process.env.EDGE_LOG === undefined ? false : { level: 'debug' } }, {
      setup: (app) => {
        // Runs after the example's own node-down hook (hooks run in order), so the purge is done by then.
        app.addWsHook('cluster:node-down', (node) => {
          downs.push({ node, at: performance.now() })
          for (const wake of downWaiters.splice(0)) wake()
        })
      }
    })
    b = await runExample({ REDIS_URL: redis.url })
    bInstance = String((await b.line((l) => l.msg === 'fastify-sip-ws: cluster node up', 5000, 'node B to join')).instance)
    // Each must have heard the other's heartbeat before a send to the other's connections can go.
    await clusterOf(() => a.app.wsCluster.nodes(), 2)
    await until(async () => (await jsonRpc<ClusterNodeInfo[]>(b.port, 'cluster.nodes')).length >= 2, 10_000, () => 'node B to see node A')
    const bWs = b.url.replace(/^http/, 'ws')
    alice = userAgent(a.wsUrl, 'alice').ua
    bob = userAgent(bWs, 'bob').ua
    const both = Promise.all([registered(alice, 'alice'), registered(bob, 'bob')])
    alice.start()
    bob.start()
    await both
    ;[carol, dave] = await Promise.all([peer(sip, a.wsUrl, 'carol'), peer(sip, bWs, 'dave')])
  }))

  after(async () => {
    if (alice !== undefined) await stop(alice, 'alice')
    // Bob's node was killed: his UA only stops trying to reconnect.
    bob?.stop()
    for (const p of [carol, dave]) if (p !== undefined) await within(5000, 'a sip.js UA to stop', p.ua.stop()).catch(() => {})
    await a?.app.close()
    await b?.kill()
    inspect?.disconnect()
    await redis?.stop()
  })

  test('each REGISTER is in Redis, under the node that holds its connection', async () => {
    const bindings = async (aor: string): Promise<string[]> => Object.values(await inspect.hgetall(aorKey(aor)))
    const [aliceBinding] = await bindings('alice')
    const [bobBinding] = await bindings('bob')
    // "<connection id> <node> <expires at> <updated at> <contact>"
    assert.match(aliceBinding, new RegExp(`^\\d+ ${a.app.wsCluster.instance} \\d+ \\d+ sip:`))
    assert.match(bobBinding, new RegExp(`^\\d+ ${bInstance} \\d+ \\d+ sip:`))
    const expiresIn = Number(bobBinding.split(' ')[2]) - Date.now()
    assert.ok(expiresIn > 100_000 && expiresIn <= 120_000, `bob's binding expires as he asked (120 s): ${expiresIn} ms`)
    assert.ok(await inspect.pttl(aorKey('bob')) > 100_000, 'and Redis forgets it by itself after that')
  })

  test('Redis restarts empty: each node writes its bindings and the secret back, and alice reaches bob again', async (t) => {
    const secret = await inspect.get('{sipws}:reg:secret')
    const bobId = Number((Object.values(await inspect.hgetall(aorKey('bob')))[0] ?? '').split(' ')[0])
    assert.ok(bobId > 0)
    await inspect.set('marker', 'before the restart')
    const restartedAt = performance.now()
    await redis.restart()
    // The nodes may have written theirs back already; a key nobody writes again shows Redis lost it all.
    assert.equal(await inspect.exists('marker'), 0, 'Redis came back empty')
    // No event reaches the test from inside either node: Redis is asked, bounded, until both wrote theirs again.
    await until(async () => !(await Promise.all(['alice', 'bob', 'carol', 'dave'].map(async (aor) => await inspect.hlen(aorKey(aor))))).includes(0), 10_000, () => 'the bindings to be written again')
    const written = performance.now() - restartedAt
    assert.equal(await inspect.get('{sipws}:reg:secret'), secret, 'the same secret, written back')
    // Node B's own channel is subscribed again once a confirmed ping to bob's connection goes through.
    await until(async () => await a.app.wsCluster.ping(bobId).catch(() => false), 10_000, () => 'node B to take pings again')
    const reachable = performance.now() - restartedAt
    const received = incomingMessage(bob)
    const [result] = await within(5000, 'alice → bob after the restart', Promise.all([send(alice, 'sip:bob@127.0.0.1', 'after the restart'), received]))
    assert.equal(result.status, 200)
    t.diagnostic(`Redis restarted empty: bindings written again after ${written.toFixed(0)} ms, node B reachable after ${reachable.toFixed(0)} ms`)
  })

  test(`JsSIP: MESSAGE alice (A) → bob (B) and back, ${ROUNDS} times each way`, async (t) => {
    const took: Record<string, number[]> = { 'A → B': [], 'B → A': [] }
    for (let i = 0; i < ROUNDS; i++) {
      for (const [from, to, toName, way] of [[alice, bob, 'bob', 'A → B'], [bob, alice, 'alice', 'B → A']] as const) {
        const text = `${way} #${i} ☃`
        const received = incomingMessage(to)
        const started = performance.now()
        const [result, event] = await within(5000, `MESSAGE ${way}`, Promise.all([send(from, `sip:${toName}@127.0.0.1`, text), received]))
        took[way].push(performance.now() - started)
        assert.deepEqual(result, { ok: true, status: 200, reason: 'OK' })
        assert.equal(event.request.body, text)
      }
    }
    t.diagnostic(`MESSAGE → 200 across nodes: A → B median ${median(took['A → B']).toFixed(1)} ms (max ${Math.max(...took['A → B']).toFixed(1)}), B → A median ${median(took['B → A']).toFixed(1)} ms (max ${Math.max(...took['B → A']).toFixed(1)})`)
  })

  test('SIP.js: MESSAGE carol (A) → dave (B) and back', async () => {
    const [status, message] = await within(5000, 'carol → dave', Promise.all([sipJsSend(sip, carol, 'sip:dave@127.0.0.1', 'hi dave'), nextMessage(dave)]))
    assert.equal(status, 200)
    assert.equal(message.request.body, 'hi dave')
    const [back, reply] = await within(5000, 'dave → carol', Promise.all([sipJsSend(sip, dave, 'sip:carol@127.0.0.1', 'hi carol'), nextMessage(carol)]))
    assert.equal(back, 200)
    assert.equal(reply.request.body, 'hi carol')
  })

  test(`the cost of a second node: alice (JsSIP, A) → carol (SIP.js, A) against → dave (SIP.js, B), ${ROUNDS} MESSAGEs each`, async (t) => {
    const took: Record<string, number[]> = { carol: [], dave: [] }
    for (let i = 0; i < ROUNDS; i++) {
      for (const [to, name] of [[carol, 'carol'], [dave, 'dave']] as const) {
        const started = performance.now()
        const [result, message] = await within(5000, `alice → ${name}`, Promise.all([send(alice, `sip:${name}@127.0.0.1`, `#${i}`), nextMessage(to)]))
        took[name].push(performance.now() - started)
        assert.equal(result.status, 200)
        assert.equal(message.request.body, `#${i}`)
      }
    }
    t.diagnostic(`MESSAGE → 200, same node: median ${median(took.carol).toFixed(1)} ms (max ${Math.max(...took.carol).toFixed(1)}); across nodes: median ${median(took.dave).toFixed(1)} ms (max ${Math.max(...took.dave).toFixed(1)})`)
  })

  test('OPTIONS across nodes: a bare client on A asks bob (JsSIP on B), who answers 200', async () => {
    const client = await RawSipClient.connect(a.wsUrl, 'olga')
    try {
      client.send(client.request('OPTIONS', 'sip:bob@127.0.0.1'))
      const response = await client.next(5000)
      assert.ok(response instanceof SipResponse)
      assert.equal(response.status, 200)
      // Bob's own answer, not one the proxy made (those carry Server).
      assert.equal(response.get('server'), undefined)
      assert.match(response.get('accept') ?? '', /application\/dtmf-relay/, 'JsSIP\'s Accept')
      assert.match(response.get('to') ?? '', /;tag=/)
    } finally {
      await client.close()
    }
  })

  for (const [caller, callee, callerName, calleeName] of [['alice', 'bob', 'A', 'B'], ['bob', 'alice', 'B', 'A']] as const) {
    test(`JsSIP: ${caller} (${callerName}) calls ${callee} (${calleeName}): INVITE, 200, ACK, then ${caller} hangs up (BYE)`, async (t) => {
      const [from, to] = caller === 'alice' ? [alice, bob] : [bob, alice]
      const incoming = incomingCall(to)
      const started = performance.now()
      const session = from.call(`sip:${callee}@127.0.0.1`, NO_MEDIA)
      const confirmed = sessionEvent(session, 'confirmed', 'the call to be answered and ACKed')
      const answered = await incoming
      assert.equal(answered.direction, 'incoming')
      assert.equal(answered.remote_identity.uri.user, caller)
      const acked = sessionEvent(answered, 'confirmed', 'the ACK to reach the callee')
      const ended = sessionEvent(answered, 'ended', 'the BYE to reach the callee')
      answered.answer(NO_MEDIA)
      await Promise.all([confirmed, acked])
      const setUp = performance.now() - started
      const hangUp = performance.now()
      const over = sessionEvent(session, 'ended', 'the caller\'s side to end')
      session.terminate()
      await Promise.all([ended, over])
      t.diagnostic(`call ${callerName} → ${calleeName}: INVITE → 200 → ACK seen by both in ${setUp.toFixed(0)} ms (JsSIP gathers ICE first); BYE → ended in ${(performance.now() - hangUp).toFixed(0)} ms`)
    })
  }

  test(`node B is SIGKILLed: alice's MESSAGE to bob gets 480 at once, then 404 once cluster:node-down purged his bindings, each within nodeTimeout (${NODE_TIMEOUT} ms) + ${LATE} ms`, async (t) => {
    const downed = new Promise<void>((resolve) => { downWaiters.push(resolve) })
    const killedAt = performance.now()
    await b.kill()
    const first = await within(NODE_TIMEOUT + LATE, 'an answer to the MESSAGE for bob', send(alice, 'sip:bob@127.0.0.1', 'are you there?'))
    const firstAfter = performance.now() - killedAt
    assert.equal(first.ok, false)
    assert.ok(first.status === 480 || first.status === 404, `an error response: ${first.status} ${first.reason}`)
    await within(NODE_TIMEOUT + LATE, 'cluster:node-down on node A', downed)
    const downAfter = downs[0].at - killedAt
    assert.equal(downs.length, 1)
    assert.equal(downs[0].node.instance, bInstance)
    assert.deepEqual(await inspect.hgetall(aorKey('bob')), {}, 'bob\'s binding purged from Redis')
    assert.deepEqual(await inspect.hgetall(aorKey('dave')), {}, 'dave\'s too')
    assert.ok(Object.keys(await inspect.hgetall(aorKey('alice'))).length === 1, 'alice\'s (node A) stays')
    const second = await within(LATE, 'an answer to the next MESSAGE for bob', send(alice, 'sip:bob@127.0.0.1', 'still there?'))
    const secondAfter = performance.now() - killedAt
    assert.deepEqual(second, { ok: false, status: 404, reason: 'Not Found' })
    t.diagnostic(`after SIGKILL of node B: MESSAGE answered ${first.status} after ${firstAfter.toFixed(0)} ms; node-down on A after ${downAfter.toFixed(0)} ms; next MESSAGE answered 404 after ${secondAfter.toFixed(0)} ms`)
    assert.ok(firstAfter <= NODE_TIMEOUT + LATE && secondAfter <= NODE_TIMEOUT + LATE)
    // Traffic on node A goes on: carol still reaches alice.
    const received = incomingMessage(alice)
    const [status] = await within(5000, 'carol → alice', Promise.all([sipJsSend(sip, carol, 'sip:alice@127.0.0.1', 'A still works'), received]))
    assert.equal(status, 200)
  })
})
