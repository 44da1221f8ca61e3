import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { expectTypeOf } from 'expect-type'
import { LwscClient } from '../../../lib/lwsc/client'
import { newCounters, type LwscCounters, type LwscStats } from '../../../lib/lwsc/stats'

const GAUGES = ['connections', 'connecting', 'inFlight', 'queued', 'endpoints'] as const
const COUNTERS = ['opened', 'connectFailures', 'requests', 'replies', 'errors', 'timeouts', 'notifies', 'failedNotifies', 'dropped'] as const

describe('lwsc statistics', () => {
  test('newCounters: every counter at 0, and a fresh object each time', () => {
    const a = newCounters()
    assert.deepEqual(Object.keys(a).sort(), [...COUNTERS].sort())
    assert.ok(Object.values(a).every((v) => v === 0))
    a.requests++
    assert.equal(newCounters().requests, 0, 'two clients never share their counters')
  })

  test('a client\'s stats() are the gauges and the counters, nothing else, all 0 when new', async (t) => {
    const client = new LwscClient()
    t.after(async () => { await client.close() })
    const stats = client.stats()
    assert.deepEqual(Object.keys(stats).sort(), [...GAUGES, ...COUNTERS].sort())
    assert.ok(Object.values(stats).every((v) => v === 0))
  })

  test('types: the counters are the stats without the gauges, every one a number', () => {
    expectTypeOf<typeof GAUGES[number] | typeof COUNTERS[number]>().toEqualTypeOf<keyof LwscStats>()
    expectTypeOf<keyof LwscCounters>().toEqualTypeOf<typeof COUNTERS[number]>()
    expectTypeOf<LwscStats[keyof LwscStats]>().toEqualTypeOf<number>()
    expectTypeOf(newCounters).returns.toEqualTypeOf<LwscCounters>()
  })
})
