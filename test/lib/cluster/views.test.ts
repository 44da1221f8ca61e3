import assert from 'node:assert/strict'
import { after, before, beforeEach, describe, test } from 'node:test'
import type WebSocket from 'ws'
import { prefixOf } from '../../../lib/cluster/ids'
import type { ViewAnswer } from '../../../lib/cluster/seam'
import { Views, type Query } from '../../../lib/cluster/views'
import { decode, encodeAnswer, type DecodedAnswer } from '../../../lib/cluster/wire'
import { beatOf, joinedParts, nodeParts, listen, localOf, type Heard, type Listener, type Parts } from '../../helpers/cluster-parts'
import { until, within } from '../../helpers/pool'
import { startRedis, type RedisServer } from '../../helpers/redis'
import { connect, startApp, type Started } from '../../helpers/server'
import { reportedSetUp } from '../../helpers/set-up'

const REQUEST_TIMEOUT = 400
const LATE = 3000
const P1 = prefixOf({ slot: 101, epoch: 1 })
const P2 = prefixOf({ slot: 102, epoch: 1 })
const SENTINEL = 'sentinel'

interface Question { t: 'q', q: string, o?: string, r: number, to: number }

function answerOf (heard: Heard): DecodedAnswer {
  const d = decode(heard.message)
  assert.ok(d !== null && !('op' in d), 'an answer')
  return d
}

describe('cluster-wide views', () => {
  let redis: RedisServer
  let parts: Parts
  let views: Views
  let peers: Listener
  let served: Started
  let clients: WebSocket[]
  const local: ViewAnswer = { instance: 'self', connections: [], wscounter: 0 }
  before(reportedSetUp(async () => {
    redis = await startRedis()
    parts = await joinedParts(redis.url, { keyPrefix: 'vw', requestTimeoutMs: REQUEST_TIMEOUT })
    views = new Views(nodeParts(parts))
    peers = await listen(redis.url, parts.channels.control)
    served = await startApp()
    clients = await Promise.all([connect(served.url), connect(served.url)])
  }))
  after(async () => {
    for (const ws of clients ?? []) ws.terminate()
    await served?.app.close()
    await parts?.close()
    await peers?.close()
    await redis?.stop()
  })
  beforeEach(() => { for (const n of [...parts.membership.values()]) parts.membership.remove(n.instance) })

  /** Peers that answer each question as `reply` says (null: they stay silent). */
  function answering (reply: (instance: string, q: Question) => Array<string | null>): () => void {
    const seen = peers.messages.length
    let stopped = false
    const loop = async (): Promise<void> => {
      for (let i = seen; !stopped; i++) {
        const heard = await peers.next((m) => peers.messages.indexOf(m) === i, 10_000, 'a question').catch(() => null)
        if (heard === null || stopped) return
        const q = JSON.parse(heard.message.toString()) as Question
        if (q.t !== 'q') continue
        for (const body of reply('', q)) {
          await peers.commands.publish(parts.channels.of(q.to), encodeAnswer(q.r, true, body))
        }
      }
    }
    void loop()
    return () => { stopped = true }
  }

  /** Publishes a sentinel on the control channel and resolves with what the peers heard before it. */
  async function heardBeforeSentinel (): Promise<string[]> {
    const seen = peers.messages.length
    await parts.link.commands.publish(parts.channels.control, SENTINEL)
    await peers.next((m) => m.message.toString() === SENTINEL && peers.messages.indexOf(m) >= seen, 5000, 'the sentinel')
    return peers.messages.slice(seen).map((m) => m.message.toString()).filter((m) => m !== SENTINEL)
  }

  test('alone, a view is this node\'s answer, asked of nobody', async () => {
    const { answers, missing } = await views.ask({ q: 'stats' }, local)
    assert.deepEqual([answers, missing], [[local], []])
    assert.deepEqual(await heardBeforeSentinel(), [])
  })

  test('a question goes on the control channel with its number and this node\'s lease; every answer in ends it', async () => {
    parts.membership.heard(beatOf('p1', [P1]), Date.now())
    parts.membership.heard(beatOf('p2', [P2]), Date.now())
    const questions: Question[] = []
    const stop = answering((_i, q) => {
      questions.push(q)
      return [JSON.stringify({ instance: 'p1', wscounter: 1 }), JSON.stringify({ instance: 'p2', wscounter: 2 })]
    })
    try {
      const started = performance.now()
      const { answers, missing } = await within(views.ask({ q: 'dump', o: 'used_asc' }, local), REQUEST_TIMEOUT + LATE, () => 'the view')
      assert.ok(performance.now() - started < REQUEST_TIMEOUT, 'not held until the timeout once all answered')
      assert.deepEqual(answers.map((a) => [a.instance, a.wscounter]), [['self', 0], ['p1', 1], ['p2', 2]])
      assert.deepEqual(missing, [])
      assert.equal(questions.length, 1)
      const [q] = questions
      assert.deepEqual({ ...q, r: 0 }, { t: 'q', q: 'dump', o: 'used_asc', r: 0, to: parts.leases.currentPrefix })
      assert.ok(q.r > 0)
    } finally { stop() }
  })

  test('a node that does not answer is named missing at requestTimeout; stray answers are dropped, not trusted', async () => {
    parts.membership.heard(beatOf('p1', [P1], { s: 101 }), Date.now())
    parts.membership.heard(beatOf('silent', [P2], { s: 102 }), Date.now())
    const stop = answering(() => ['not json', 'null', '42', '[]', JSON.stringify({ instance: 7 }), JSON.stringify({ instance: 'stranger' }),
      JSON.stringify({ instance: 'p1', wscounter: 5 }), JSON.stringify({ instance: 'p1', wscounter: 99 })])
    // A stray answer is read in the subscriber's message handler: anything it throws escapes to the process.
    const thrown: unknown[] = []
    const onThrown = (err: unknown): void => { thrown.push(err) }
    process.on('uncaughtException', onThrown)
    try {
      const started = performance.now()
      const { answers, missing } = await within(views.ask({ q: 'stats' }, local), REQUEST_TIMEOUT + LATE, () => 'the view')
      assert.ok(performance.now() - started >= REQUEST_TIMEOUT - 5)
      assert.deepEqual(answers.map((a) => [a.instance, a.wscounter]), [['self', 0], ['p1', 5]], 'one answer per node, the first')
      assert.deepEqual(missing.map((n) => [n.instance, n.slot]), [['silent', 102]])
      assert.deepEqual(thrown, [])
    } finally {
      stop()
      process.off('uncaughtException', onThrown)
    }
  })

  test('while Redis is away, every other node is missing at once', async () => {
    parts.membership.heard(beatOf('p1', [P1]), Date.now())
    await redis.kill()
    try {
      await until(() => !parts.link.ready, 5000, () => 'the link to see Redis go')
      const started = performance.now()
      const { answers, missing } = await views.ask({ q: 'stats' }, local)
      assert.ok(performance.now() - started < REQUEST_TIMEOUT)
      assert.deepEqual([answers, missing.map((n) => n.instance)], [[local], ['p1']])
    } finally {
      await redis.restart()
      await until(() => parts.link.ready, 5000, () => 'the link back')
      await peers.subscribe(parts.channels.control)
    }
  })

  test('another node\'s question is answered on its lease\'s channel with this node\'s dump or statistics', async () => {
    const asker = await listen(redis.url, parts.channels.of(P1))
    try {
      const app = localOf(served.app)
      views.answer({ t: 'q', q: 'dump', o: 'used_asc', r: 7, to: P1 }, app)
      const dump = answerOf(await asker.next((m) => answerOf(m).request === 7, 5000, 'the dump answer'))
      assert.equal(dump.ok, true)
      const body = JSON.parse(dump.body.toString()) as ViewAnswer
      const expected = served.app.wsDump('used_asc')
      assert.deepEqual(body, { instance: parts.instance, connections: JSON.parse(JSON.stringify(expected.connections)), wscounter: 2 })
      views.answer({ t: 'q', q: 'stats', r: 8, to: P1 }, app)
      const stats = JSON.parse(answerOf(await asker.next((m) => answerOf(m).request === 8, 5000, 'the stats answer')).body.toString()) as ViewAnswer
      assert.equal(stats.instance, parts.instance)
      assert.equal(stats.stats?.ws_current_connections, 2)
    } finally { await asker.close() }
  })

  test('its own question, heard back on the control channel, is not answered', async () => {
    const self = await listen(redis.url, parts.channels.of(parts.leases.currentPrefix))
    try {
      views.answer({ t: 'q', q: 'stats', r: 9, to: parts.leases.currentPrefix }, localOf(served.app))
      await parts.link.commands.publish(parts.channels.of(parts.leases.currentPrefix), SENTINEL)
      const first = await self.next(() => true, 5000, 'the first message')
      assert.equal(first.message.toString(), SENTINEL)
    } finally { await self.close() }
  })

  test('a malformed question costs nothing more than itself: not answered, not thrown, logged', async () => {
    const asker = await listen(redis.url, parts.channels.of(P1))
    const app = localOf(served.app)
    try {
      const bad = [
        { t: 'q', q: 'dump', o: 'bogus', r: 1, to: P1 },
        { t: 'q', q: 'dump', r: 2, to: P1 },
        { t: 'q', q: 'everything', r: 3, to: P1 },
        { t: 'q', q: 'stats', r: -1, to: P1 },
        { t: 'q', q: 'stats', r: 0, to: P1 },
        { t: 'q', q: 'stats', r: 2 ** 40, to: P1 },
        { t: 'q', q: 'stats', r: 1.5, to: P1 },
        { t: 'q', q: 'stats', r: 'x', to: P1 },
        { t: 'q', q: 'stats', r: 4 },
        { t: 'q', q: 'stats', r: 5, to: 'P1' }
      ] as unknown as Query[]
      for (const q of bad) assert.doesNotThrow(() => { views.answer(q, app) }, JSON.stringify(q))
      await parts.link.commands.publish(parts.channels.of(P1), SENTINEL)
      const first = await asker.next(() => true, 5000, 'the first message')
      assert.equal(first.message.toString(), SENTINEL, 'none of them answered')
      const dropped = parts.logged.entries.filter((e) => e.msg === 'fastify-sip-ws: cluster: malformed view question dropped')
      assert.equal(dropped.length, bad.length)
      assert.equal(dropped[0].level, 40)
      assert.deepEqual(dropped[0].question, bad[0])
    } finally { await asker.close() }
  })
})
