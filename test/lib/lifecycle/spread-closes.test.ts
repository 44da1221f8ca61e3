import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { Connection } from '../../../lib/connection/connection'
import { spreadCloses } from '../../../lib/lifecycle/spread-closes'
import { entry } from '../../helpers/connections'
import { within } from '../../helpers/pool'

// How late a timer may fire on a loaded 2-core machine.
const LATE = 1500

const connections = (n: number): Connection[] => Array.from({ length: n }, (_, i) => entry(i + 1))
const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length

/** Closes as the drain does (a Close 1001) and records which connection, and when, from `t0`. */
function recorder (t0: number): { closed: Array<{ id: number, at: number }>, close: (conn: Connection) => void } {
  const closed: Array<{ id: number, at: number }> = []
  return {
    closed,
    close: (conn) => {
      closed.push({ id: conn.id, at: performance.now() - t0 })
      conn.close('local', 1001, 'Going Away')
    }
  }
}

describe('spreadCloses', () => {
  test('within 0: every open connection is closed, in order, before it returns; done once', () => {
    const conns = connections(5)
    const r = recorder(performance.now())
    let done = 0
    const stop = spreadCloses(conns, 0, r.close, () => { done++ })
    assert.deepEqual(r.closed.map((c) => c.id), [1, 2, 3, 4, 5])
    assert.equal(done, 1)
    assert.ok(conns.every((c) => c.state === 'CLOSING'))
    stop()
    assert.equal(done, 1, 'stopping after the end does not call done again')
  })

  test('no connections: done at once and no timer left', () => {
    const before = timers()
    let done = 0
    spreadCloses([], 5000, () => { throw new Error('nothing to close') }, () => { done++ })
    assert.equal(done, 1)
    assert.equal(timers(), before)
  })

  test('connections already leaving are skipped, whether before the start or while waiting their turn', async () => {
    const conns = connections(6)
    conns[1].close('remote', 1000, '')
    const r = recorder(performance.now())
    let finished: () => void = () => {}
    const done = new Promise<void>((resolve) => { finished = resolve })
    spreadCloses(conns, 300, r.close, finished)
    // Closed by someone else (its peer, say) before its turn came.
    conns[5].close('local', 1000, 'Normal closure')
    await within(done, 300 + LATE, () => 'the spread never finished')
    assert.deepEqual(r.closed.map((c) => c.id), [1, 3, 4, 5])
  })

  test('spread evenly over `within`: the i-th of n is never closed before i/n of it; done after the last', async () => {
    const WITHIN = 400
    const N = 10
    const conns = connections(N)
    const t0 = performance.now()
    const r = recorder(t0)
    let doneAt = 0
    let finished: () => void = () => {}
    const done = new Promise<void>((resolve) => { finished = resolve })
    spreadCloses(conns, WITHIN, r.close, () => { doneAt = performance.now() - t0; finished() })
    await within(done, WITHIN + LATE, () => 'the spread never finished')
    assert.deepEqual(r.closed.map((c) => c.id), conns.map((c) => c.id))
    for (const [i, { at }] of r.closed.entries()) {
      assert.ok(at >= i * WITHIN / N, `close ${i} at ${at.toFixed(1)} ms, before ${i * WITHIN / N} ms`)
    }
    assert.ok(r.closed[N - 1].at >= WITHIN * (N - 1) / N)
    assert.ok(doneAt >= r.closed[N - 1].at)
    assert.ok(doneAt < WITHIN + LATE, `done after ${doneAt.toFixed(0)} ms`)
  })

  test('the function it returns stops early: no more closes, done once, its timer gone', () => {
    const before = timers()
    const conns = connections(5)
    const r = recorder(performance.now())
    let done = 0
    const stop = spreadCloses(conns, 60_000, r.close, () => { done++ })
    assert.equal(timers(), before + 1, 'a timer while it runs')
    stop()
    stop()
    assert.equal(done, 1)
    assert.equal(timers(), before, 'the timer is cleared')
    assert.ok(r.closed.length <= 1, `${r.closed.length} closed in the first instant of 60 s`)
    assert.equal(conns.filter((c) => c.isOpen).length, 5 - r.closed.length)
  })
})
