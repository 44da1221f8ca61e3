import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { StallWatch } from '../../../lib/cluster/stall'

const INTERVAL = 250
const NODE_TIMEOUT = 1000
// Clock readings, as Date.now() gives them.
const T = 1_700_000_000_000

describe('the stall watch', () => {
  test('ticks on time (or a little late, as on a loaded machine) are no stall: the node may judge', () => {
    const watch = new StallWatch(INTERVAL, NODE_TIMEOUT)
    assert.equal(watch.tick(T + 10_000), 0, 'the first tick has nothing to compare with')
    assert.equal(watch.tick(T + 10_250), 0)
    assert.equal(watch.tick(T + 10_250 + INTERVAL * 1.5), 0, 'half an interval late: still on time')
    assert.equal(watch.settled(T + 10_700), true)
    assert.equal(watch.fenceNumber, 0)
  })

  test('a late tick holds judgement until its fence comes back; an older fence does not release it', () => {
    const watch = new StallWatch(INTERVAL, NODE_TIMEOUT)
    watch.tick(T)
    assert.equal(watch.tick(T + 5000), 5000, 'away 5 s (SIGSTOP, a VM pause)')
    const first = watch.fenceNumber
    assert.ok(first > 0)
    assert.equal(watch.settled(T + 5000), false)
    assert.equal(watch.tick(T + 5600), 600, 'late again before the fence came back')
    const second = watch.fenceNumber
    assert.notEqual(second, first)
    watch.fenced(first)
    assert.equal(watch.settled(T + 5700), false, 'the heartbeats sent before the second stall may still be unread')
    watch.fenced(second)
    assert.equal(watch.settled(T + 5700), true)
    assert.equal(watch.fenceNumber, 0)
  })

  test('a fence that never comes back (Redis gone meanwhile) holds judgement for a fresh nodeTimeout only', () => {
    const watch = new StallWatch(INTERVAL, NODE_TIMEOUT)
    watch.tick(T)
    watch.tick(T + 3000)
    assert.equal(watch.settled(T + 3000 + NODE_TIMEOUT - 1), false)
    assert.equal(watch.settled(T + 3000 + NODE_TIMEOUT), true)
  })
})
