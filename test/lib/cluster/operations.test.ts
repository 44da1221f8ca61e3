import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, describe, test } from 'node:test'
import { makeId, prefixOf } from '../../../lib/cluster/ids'
import { Operations } from '../../../lib/cluster/operations'
import { ANSWER, CLOSE, closeBody, decode, encode, encodeAnswer, PING, PONG, SEND_BINARY, SEND_TEXT, type Decoded, type DecodedAnswer, type Operation } from '../../../lib/cluster/wire'
import { beatOf, joinedParts, nodeParts, listen, localOf, type Heard, type Listener, type Parts } from '../../helpers/cluster-parts'
import { watchUnhandledRejections } from '../../helpers/lwsc'
import { until, within } from '../../helpers/pool'
import { startRedis, type RedisServer } from '../../helpers/redis'
import { connect, startApp, type Started } from '../../helpers/server'
import { reportedSetUp } from '../../helpers/set-up'

const REQUEST_TIMEOUT = 400
const LATE = 3000
// The lease the test plays another node under: its channel is the watcher's.
const PEER = prefixOf({ slot: 200, epoch: 4242 })
const SENTINEL = Buffer.from('sentinel')

function asOperation (heard: Heard): Decoded {
  const d = decode(heard.message)
  assert.ok(d !== null && 'op' in d, 'an operation')
  return d
}

function asAnswer (heard: Heard): DecodedAnswer {
  const d = decode(heard.message)
  assert.ok(d !== null && !('op' in d), 'an answer')
  return d
}

describe('operations across nodes', () => {
  let redis: RedisServer
  let parts: Parts
  let ops: Operations
  let peer: Listener
  let served: Started
  before(reportedSetUp(async () => {
    redis = await startRedis()
    parts = await joinedParts(redis.url, { keyPrefix: 'op', requestTimeoutMs: REQUEST_TIMEOUT })
    ops = new Operations(nodeParts(parts))
    parts.onOperation = (d) => { ops.perform(d) }
    peer = await listen(redis.url, parts.channels.of(PEER))
    parts.membership.heard(beatOf('peer', [PEER]), Date.now())
    served = await startApp()
    ops.serve(localOf(served.app))
  }))
  after(async () => {
    await served?.app.close()
    await parts?.close()
    await peer?.close()
    await redis?.stop()
  })

  /** The next operation the peer hears, answered as a node would (or not at all). */
  async function peerHears (what: string, reply?: (op: Decoded) => boolean | null): Promise<Decoded> {
    const count = peer.messages.length
    const heard = await peer.next((m) => peer.messages.indexOf(m) >= count && m.channel === parts.channels.of(PEER), 5000, what)
    const op = asOperation(heard)
    const ok = reply?.(op) ?? null
    if (ok !== null) await peer.commands.publish(parts.channels.of(op.replyTo), encodeAnswer(op.request, ok))
    return op
  }

  test('a plain operation on another node\'s id is one publish to its lease channel, wanting no answer', async () => {
    const id = makeId(PEER, 7)
    const cases: Array<[() => boolean, Operation, string]> = [
      [() => ops.send(id, 'text'), SEND_TEXT, 'text'],
      [() => ops.send(id, Buffer.from([1, 2])), SEND_BINARY, '0102'],
      [() => ops.send(id, new Uint8Array([3])), SEND_BINARY, '03'],
      [() => ops.close(id, 4001, 'moved'), CLOSE, closeBody(4001, 'moved').toString('hex')],
      [() => ops.ping(id), PING, ''],
      [() => ops.pong(id), PONG, '']
    ]
    for (const [call, op, body] of cases) {
      const heard = peerHears(`op ${op}`)
      assert.equal(call(), true)
      const d = await heard
      assert.deepEqual([d.op, d.id, d.request, d.replyTo], [op, id, 0, 0])
      assert.equal(op === SEND_TEXT ? d.body.toString() : d.body.toString('hex'), body)
    }
  })

  /** The messages the peer hears after `count`, up to a sentinel published now: what reached it meanwhile. */
  async function heardSince (count: number): Promise<Heard[]> {
    await parts.link.commands.publish(parts.channels.of(PEER), SENTINEL)
    await peer.next((m) => peer.messages.indexOf(m) >= count && m.message.equals(SENTINEL), 5000, 'the sentinel')
    return peer.messages.slice(count, -1)
  }
  const since = (from: number, msg: string): unknown[] => parts.logged.entries.slice(from).filter((e) => e.msg === msg)

  test('no publish for an id no other node can hold: its own, none at all, a node Redis confirmed gone; each refusal logged', async () => {
    const own = parts.leases.nextId()
    const buried = prefixOf({ slot: 203, epoch: 3 })
    parts.membership.heard(beatOf('buried', [buried]), Date.now())
    parts.membership.remove('buried')
    const count = peer.messages.length
    const logged = parts.logged.entries.length
    for (const id of [own, 0, -5, 1.5, makeId(buried, 1)]) {
      assert.equal(ops.send(id, 'x'), false, String(id))
      assert.equal(ops.ping(id), false)
      assert.equal(await ops.confirmSend(id, 'x'), false)
      assert.equal(await ops.confirmClose(id, 1000, ''), false)
    }
    assert.deepEqual(await heardSince(count), [], 'nothing reached the peer')
    const refused = parts.logged.entries.slice(logged).filter((e) => e.msg === 'fastify-sip-ws: cluster: operation refused')
    assert.equal(refused.length, 20, 'one line per refusal')
    assert.deepEqual([...new Set(refused.map((e) => e.why))].sort(), ['its node is gone', 'not a connection id', 'not open here, on the node that made the id'])
    parts.leases.released(own)
  })

  test('an id of a node not heard of is published anyway; reaching nobody, the plain call logs the drop and the confirmed one is false', async () => {
    const unknown = makeId(prefixOf({ slot: 201, epoch: 1 }), 1)
    const logged = parts.logged.entries.length
    assert.equal(ops.send(unknown, 'x'), true, 'unknown is not dead')
    assert.equal(ops.pong(unknown), true)
    const drops = await parts.logged.next('operation for another node dropped', 5000)
    assert.deepEqual([drops.level, drops.id, drops.why], [40, unknown, 'no node subscribes to its lease'])
    await until(() => since(logged, 'fastify-sip-ws: cluster: operation for another node dropped').length === 2, 5000, () => 'both drops logged', 0)
    const started = performance.now()
    assert.equal(await ops.confirmSend(unknown, 'x'), false, 'nobody subscribed, and Redis says nobody serves it')
    assert.ok(performance.now() - started < REQUEST_TIMEOUT, 'no wait for the timeout')
    // A lease the peer serves but never beat about: published, and answered by the peer.
    const unheard = prefixOf({ slot: 206, epoch: 6 })
    await peer.subscribe(parts.channels.of(unheard))
    const heard = peer.next((m) => m.channel === parts.channels.of(unheard), 5000, 'the send to a node not heard of')
    const sent = ops.confirmSend(makeId(unheard, 1), 'to a node not heard of')
    const op = asOperation(await heard)
    await peer.commands.publish(parts.channels.of(op.replyTo), encodeAnswer(op.request, true))
    assert.equal(await within(sent, 5000, () => 'the answer'), true)
    assert.equal(op.body.toString(), 'to a node not heard of')
  })

  test('nobody subscribed but Redis says the lease is served (its node is resubscribing): the outcome is unknown, a typed error', async () => {
    const resubscribing = prefixOf({ slot: 204, epoch: 4 })
    await peer.commands.set(`op:live:${resubscribing}`, 'elsewhere', 'PX', 60_000)
    try {
      await assert.rejects(ops.confirmSend(makeId(resubscribing, 1), 'x'), { code: 'FST_SIPWS_CLUSTER_UNAVAILABLE', message: /says it is served/ })
    } finally {
      await peer.commands.del(`op:live:${resubscribing}`)
    }
  })

  test('a confirmed operation asks for an answer on this node\'s lease and resolves with the owner\'s word', async () => {
    const id = makeId(PEER, 8)
    const yes = peerHears('confirmSend', () => true)
    const sent = ops.confirmSend(id, 'confirmed')
    const op = await yes
    assert.ok(op.request > 0)
    assert.equal(op.replyTo, parts.leases.currentPrefix)
    assert.equal(op.body.toString(), 'confirmed')
    assert.equal(await within(sent, 5000, () => 'the confirmation'), true)
    const no = peerHears('confirmClose', () => false)
    const closed = ops.confirmClose(id, 4002, 'gone')
    assert.deepEqual([(await no).op, closeBody(4002, 'gone').equals((await no).body)], [CLOSE, true])
    assert.equal(await within(closed, 5000, () => 'the answer'), false)
    for (const [call, op] of [[async () => await ops.confirmPing(id), PING], [async () => await ops.confirmPong(id), PONG]] as const) {
      const heard = peerHears(`op ${op}`, () => true)
      const result = call()
      assert.equal((await heard).op, op)
      assert.equal(await within(result, 5000, () => 'the answer'), true)
    }
  })

  test('no answer within requestTimeout: FST_SIPWS_CLUSTER_TIMEOUT', async () => {
    const heard = peerHears('the unanswered send')
    const started = performance.now()
    await assert.rejects(within(ops.confirmSend(makeId(PEER, 9), 'x'), REQUEST_TIMEOUT + LATE, () => 'the timeout'), { code: 'FST_SIPWS_CLUSTER_TIMEOUT' })
    assert.ok(performance.now() - started >= REQUEST_TIMEOUT - 5)
    await heard
  })

  test('an operation for this node\'s connection is carried out on it, and answered when asked', async () => {
    const ws = await connect(served.url)
    const id = served.app.wsDump().connections[0].id
    const answers = async (request: number): Promise<DecodedAnswer> => asAnswer(await peer.next((m) => m.message[0] === ANSWER && asAnswer(m).request === request, 5000, `answer ${request}`))
    const text = once(ws, 'message')
    ops.perform(decode(encode(SEND_TEXT, id, 101, PEER, 'from afar')) as Decoded)
    assert.equal(((await within(text, 5000, () => 'the text')) as [Buffer])[0].toString(), 'from afar')
    assert.deepEqual(await answers(101), { request: 101, ok: true, body: Buffer.alloc(0) })
    const binary = once(ws, 'message')
    ops.perform(decode(encode(SEND_BINARY, id, 102, PEER, Buffer.from([9, 8]))) as Decoded)
    assert.deepEqual(((await within(binary, 5000, () => 'the bytes')) as [Buffer, boolean]).map((x) => Buffer.isBuffer(x) ? [...x] : x), [[9, 8], true])
    assert.equal((await answers(102)).ok, true)
    const ping = once(ws, 'ping')
    ops.perform(decode(encode(PING, id, 103, PEER, null)) as Decoded)
    await within(ping, 5000, () => 'the ping')
    const pong = once(ws, 'pong')
    ops.perform(decode(encode(PONG, id, 104, PEER, null)) as Decoded)
    await within(pong, 5000, () => 'the pong')
    assert.deepEqual([(await answers(103)).ok, (await answers(104)).ok], [true, true])
    // Not held here: answered false.
    ops.perform(decode(encode(SEND_TEXT, id + 1000, 105, PEER, 'nobody')) as Decoded)
    assert.equal((await answers(105)).ok, false)
    const closed = once(ws, 'close')
    ops.perform(decode(encode(CLOSE, id, 106, PEER, closeBody(4003, 'from afar'))) as Decoded)
    const [code, reason] = await within(closed, 5000, () => 'the close') as [number, Buffer]
    assert.deepEqual([code, reason.toString(), (await answers(106)).ok], [4003, 'from afar', true])
  })

  test('an operation refused here is answered false and logged; one wanting no answer gets none', async () => {
    const ws = await connect(served.url)
    ws.on('error', () => {})
    const id = served.app.wsDump('used_asc').connections[0].id
    const answer = async (request: number): Promise<boolean> => asAnswer(await peer.next((m) => m.message[0] === ANSWER && asAnswer(m).request === request, 5000, `answer ${request}`)).ok
    ops.perform(decode(encode(CLOSE, id, 201, PEER, closeBody(1005, 'no status'))) as Decoded)
    assert.equal(await answer(201), false)
    const refused = await parts.logged.next('remote operation refused', 1000)
    assert.deepEqual([refused.level, refused.id, refused.op, (refused.err as { code: string }).code], [40, id, CLOSE, 'FST_SIPWS_INVALID_CLOSE'])
    // A Close body too short for a code.
    ops.perform(decode(encode(CLOSE, id, 202, PEER, Buffer.from([3]))) as Decoded)
    assert.equal(await answer(202), false)
    assert.equal(served.app.wsConnection(id)?.state, 'OPEN')
    // Request 0: carried out, not answered; not carried out (no such connection), not answered but logged.
    const count = peer.messages.length
    const logged = parts.logged.entries.length
    const got = once(ws, 'message')
    ops.perform(decode(encode(SEND_TEXT, id, 0, PEER, 'quiet')) as Decoded)
    await within(got, 5000, () => 'the message')
    ops.perform(decode(encode(SEND_TEXT, id + 1000, 0, PEER, 'to nobody')) as Decoded)
    assert.deepEqual(await heardSince(count), [], 'no answer')
    const dropped = parts.logged.entries.slice(logged).filter((e) => e.level >= 40)
    assert.deepEqual(dropped.map((e) => [e.msg, e.id]), [['fastify-sip-ws: cluster: operation from another node dropped: no such connection open here', id + 1000]])
    ws.terminate()
  })

  test('Redis away: plain calls are false, confirmed ones reject with FST_SIPWS_CLUSTER_UNAVAILABLE, at once', async () => {
    await redis.kill()
    try {
      await until(() => !parts.link.ready, 5000, () => 'the link to see Redis go')
      const id = makeId(PEER, 10)
      assert.equal(ops.send(id, 'x'), false)
      assert.equal(ops.close(id, 1000, ''), false)
      const started = performance.now()
      await assert.rejects(ops.confirmSend(id, 'x'), { code: 'FST_SIPWS_CLUSTER_UNAVAILABLE', message: 'cluster: Redis is not connected' })
      assert.ok(performance.now() - started < REQUEST_TIMEOUT)
      // Its own ids need no Redis: not remote, so false.
      const own = parts.leases.nextId()
      assert.equal(await ops.confirmSend(own, 'x'), false)
      parts.leases.released(own)
    } finally {
      await redis.restart()
      await until(() => parts.link.ready, 5000, () => 'the link back')
      await peer.subscribe(parts.channels.of(PEER))
    }
    // Just back, Redis may be empty (restarted) and its nodes not present again yet: nobody subscribed is
    // no proof that nobody serves the lease, for nodeTimeout.
    assert.ok(Date.now() - parts.link.backSince < 1000)
    await assert.rejects(ops.confirmSend(makeId(prefixOf({ slot: 205, epoch: 5 }), 1), 'x'), { code: 'FST_SIPWS_CLUSTER_UNAVAILABLE', message: /may not know yet/ })
  })
  // Last: the operation the stalled Redis holds is delivered to the peer after the test.
  test('Redis stalled (its socket open, nothing answered): a confirmed call still ends at requestTimeout', async () => {
    const unhandled = watchUnhandledRejections()
    process.kill(redis.pid(), 'SIGSTOP')
    try {
      const started = performance.now()
      await assert.rejects(within(ops.confirmSend(makeId(PEER, 11), 'x'), REQUEST_TIMEOUT + LATE, () => 'the confirmed send'), { code: 'FST_SIPWS_CLUSTER_TIMEOUT' })
      assert.ok(performance.now() - started >= REQUEST_TIMEOUT - 5)
    } finally {
      process.kill(redis.pid(), 'SIGCONT')
    }
    // The publish it sent completes once Redis answers again (commands are answered in order).
    assert.equal(await within(parts.link.commands.ping(), 5000, () => 'Redis to answer again'), 'PONG')
    assert.deepEqual(unhandled.stop(), [], 'no rejection left unhandled')
  })
})
