import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ClusterNodeGoneError, ClusterUnavailableError } from '../../../lib/errors'
import { Requests } from '../../../lib/cluster/requests'
import { within } from '../../helpers/pool'

const answer = (request: number, ok: boolean, body = ''): { request: number, ok: boolean, body: Buffer } => ({ request, ok, body: Buffer.from(body) })

/** Whether a promise has settled by now (its callbacks run before those of a promise settled after it). */
function tracked<T> (promise: Promise<T>): { settled: () => boolean } {
  let settled = false
  promise.then(() => { settled = true }, () => { settled = true })
  return { settled: () => settled }
}

describe('cluster requests', () => {
  test('an answer settles its request by number, with its outcome and body; numbers count from 1', async () => {
    const requests = new Requests(5000)
    const [a, b, c] = [requests.open(10), requests.open(10), requests.open(11)]
    assert.deepEqual([a.id, b.id, c.id], [1, 2, 3])
    requests.answered(answer(c.id, true, '{"x":1}'))
    requests.answered(answer(a.id, false))
    requests.answered(answer(b.id, true))
    const [ra, rb, rc] = await within(Promise.all([a.answer, b.answer, c.answer]), 1000, () => 'the answers')
    assert.deepEqual([ra, rb], [{ ok: false, body: null }, { ok: true, body: null }])
    assert.deepEqual([rc.ok, rc.body?.toString()], [true, '{"x":1}'])
    // A second answer, or one for a number nobody waits for, is dropped.
    requests.answered(answer(a.id, true))
    requests.answered(answer(999, true))
  })

  test('a thousand requests in flight each get their own answer, whatever the order', async () => {
    const requests = new Requests(5000)
    const open = Array.from({ length: 1000 }, (_, i) => requests.open(i % 7))
    for (const r of [...open].reverse()) requests.answered(answer(r.id, r.id % 2 === 0, String(r.id)))
    const outcomes = await within(Promise.all(open.map(async (r) => await r.answer)), 2000, () => 'the answers')
    outcomes.forEach((o, i) => { assert.deepEqual([o.ok, o.body?.toString()], [open[i].id % 2 === 0, String(open[i].id)]) })
  })

  test('no answer within the timeout rejects with FST_SIPWS_CLUSTER_TIMEOUT; a late answer is dropped', async () => {
    const requests = new Requests(100)
    const started = performance.now()
    const r = requests.open(5)
    await assert.rejects(within(r.answer, 3000, () => 'the timeout'), (err: Error & { code?: string, statusCode?: number }) => {
      assert.deepEqual([err.code, err.statusCode], ['FST_SIPWS_CLUSTER_TIMEOUT', 504])
      assert.match(err.message, /within requestTimeout \(100 ms\)/)
      return true
    })
    assert.ok(performance.now() - started >= 95, 'not before the timeout')
    requests.answered(answer(r.id, true))
  })

  test('a request ended early settles at once: not done, or with the error given; its answer is dropped', async () => {
    const requests = new Requests(5000)
    const nobody = requests.open(5)
    const failed = requests.open(5)
    nobody.end()
    failed.end(new ClusterUnavailableError('publish failed'))
    requests.answered(answer(nobody.id, true))
    assert.deepEqual(await within(nobody.answer, 1000, () => 'the end'), { ok: false, body: null })
    await assert.rejects(within(failed.answer, 1000, () => 'the end'), { code: 'FST_SIPWS_CLUSTER_UNAVAILABLE', message: 'cluster: publish failed' })
    // Ended after its timeout, or ended twice: the first outcome stays.
    const late = new Requests(20)
    const timedOut = late.open(5)
    await assert.rejects(timedOut.answer, { code: 'FST_SIPWS_CLUSTER_TIMEOUT' })
    timedOut.end()
    timedOut.end(new Error('again'))
    const watched = tracked(requests.open(6).answer)
    const other = requests.open(6)
    requests.answered(answer(other.id, true))
    await other.answer
    assert.equal(watched.settled(), false, 'ending one request leaves the others be')
    requests.fail(null, new Error('done'))
  })

  test('fail takes the requests to the given targets only; null takes them all, questions to every node too', async () => {
    const requests = new Requests(5000)
    const [toGone, alsoGone, toOther] = [requests.open(1), requests.open(2), requests.open(3)]
    requests.fail(new Set([1, 2]), new ClusterNodeGoneError('n1'))
    for (const r of [toGone, alsoGone]) await assert.rejects(r.answer, { code: 'FST_SIPWS_CLUSTER_NODE_GONE', message: /node n1 went away/ })
    requests.answered(answer(toOther.id, true))
    assert.deepEqual(await toOther.answer, { ok: true, body: null })

    const one = requests.open(3)
    const bodies: string[] = []
    const all = requests.collect((body) => { bodies.push(body.toString()); return false }, async () => {})
    requests.fail(null, new ClusterUnavailableError('the node is closing'))
    await assert.rejects(one.answer, { code: 'FST_SIPWS_CLUSTER_UNAVAILABLE' })
    await within(all, 1000, () => 'the question to end with the node')
    assert.deepEqual(bodies, [])
  })

  test('a question to every node takes answers until its collector has them all', async () => {
    const requests = new Requests(5000)
    const bodies: string[] = []
    let number = 0
    const done = requests.collect((body) => { bodies.push(body.toString()); return bodies.length === 2 }, async (request) => { number = request })
    await within(new Promise<void>((resolve) => { setImmediate(resolve) }), 1000, () => 'a turn')
    assert.ok(number > 0)
    requests.answered(answer(number, true))
    requests.answered(answer(number, true, 'first'))
    requests.answered(answer(number, true, 'second'))
    await within(done, 1000, () => 'the question to end')
    requests.answered(answer(number, true, 'too late'))
    assert.deepEqual(bodies, ['first', 'second'], 'empty answers are not given to the collector; none after it had all')
  })

  test('a question ends at the timeout with what came, and at once when it could not be sent', async () => {
    const requests = new Requests(150)
    const bodies: string[] = []
    let started = performance.now()
    await within(requests.collect((body) => { bodies.push(body.toString()); return false }, async (request) => {
      requests.answered(answer(request, true, 'only one'))
    }), 3000, () => 'the question to time out')
    assert.ok(performance.now() - started >= 145)
    assert.deepEqual(bodies, ['only one'])

    started = performance.now()
    await within(requests.collect(() => true, async () => { throw new Error('publish failed') }), 3000, () => 'the question to end')
    assert.ok(performance.now() - started < 145, 'not held until the timeout')
  })

  test('request numbers wrap from 2^32 - 1 to 1, never 0 (which means no answer wanted)', () => {
    const requests = new Requests(5000)
    ;(requests as unknown as { next: number }).next = 0xffffffff
    const last = requests.open(1)
    const wrapped = requests.open(1)
    assert.deepEqual([last.id, wrapped.id], [0xffffffff, 1])
    last.end()
    wrapped.end()
  })
})
