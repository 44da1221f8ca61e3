import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Rejoin } from '../../../lib/cluster/rejoin'
import type { ClusterRejoinedEvent } from '../../../lib/cluster/types'

const NODE_TIMEOUT = 1000
const HELD = { lease: 'held', lapsed: false } as const
// Clock readings, as Date.now() gives them.
const T = 1_700_000_000_000

function watched (): { rejoin: Rejoin, events: ClusterRejoinedEvent[] } {
  const events: ClusterRejoinedEvent[] = []
  return { rejoin: new Rejoin('me', NODE_TIMEOUT, (e) => { events.push(e) }), events }
}

describe('rejoining', () => {
  test('the first renewal joins: a presence not there before is no rejoin', () => {
    const { rejoin, events } = watched()
    rejoin.renewed({ lease: 'held', lapsed: true }, T + 100)
    rejoin.renewed(HELD, T + 350)
    assert.deepEqual(events, [])
  })

  test('each reason, once per event, with the time since Redis last confirmed the node', () => {
    const { rejoin, events } = watched()
    rejoin.renewed(HELD, T + 0)
    rejoin.renewed({ lease: 'held', lapsed: true }, T + 4000)
    rejoin.renewed(HELD, T + 4250)
    rejoin.renewed({ lease: 'expired', lapsed: false }, T + 5000)
    rejoin.renewed({ lease: 'lost', lapsed: true }, T + 9000)
    rejoin.renewed(HELD, T + 9250)
    assert.deepEqual(events, [
      { instance: 'me', reason: 'lease-expired', gapMs: 4000 },
      { instance: 'me', reason: 'lease-expired', gapMs: 750 },
      { instance: 'me', reason: 'lease-lost', gapMs: 4000 }
    ])
  })

  test('a stall past nodeTimeout is reported once, as what Redis found if it found anything', () => {
    const { rejoin, events } = watched()
    rejoin.renewed(HELD, T + 0)
    rejoin.away(NODE_TIMEOUT)
    rejoin.renewed(HELD, T + 1200)
    assert.deepEqual(events, [], 'away no longer than nodeTimeout: nobody could count it gone')
    rejoin.away(3000)
    rejoin.away(1500)
    rejoin.renewed(HELD, T + 4300)
    rejoin.renewed(HELD, T + 4550)
    rejoin.away(5000)
    rejoin.renewed({ lease: 'held', lapsed: true }, T + 9600)
    assert.deepEqual(events, [
      { instance: 'me', reason: 'stalled', gapMs: 3100 },
      { instance: 'me', reason: 'lease-expired', gapMs: 5050 }
    ])
  })
})
