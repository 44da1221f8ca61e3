import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Channels } from '../../../lib/cluster/channels'
import { prefixOf } from '../../../lib/cluster/ids'

describe('cluster channel names', () => {
  test('one control channel and one channel per lease, under the key prefix', () => {
    const channels = new Channels('sipws')
    assert.equal(channels.control, 'sipws:ctl')
    assert.equal(channels.of(0), 'sipws:c:0')
    assert.equal(channels.of(prefixOf({ slot: 255, epoch: 2 ** 22 - 1 })), `sipws:c:${2 ** 30 - 1}`)
    assert.notEqual(channels.of(prefixOf({ slot: 1, epoch: 5 })), channels.of(prefixOf({ slot: 1, epoch: 6 })))
    const other = new Channels('edge:b')
    assert.deepEqual([other.control, other.of(3)], ['edge:b:ctl', 'edge:b:c:3'])
    // No lease channel is ever the control channel.
    assert.notEqual(channels.of(Number.NaN), channels.control)
  })

  test('a name asked again, or after forget, is the same name', () => {
    const channels = new Channels('p')
    const first = channels.of(42)
    assert.equal(channels.of(42), first)
    channels.forget(42)
    channels.forget(42)
    channels.forget(7)
    assert.equal(channels.of(42), 'p:c:42')
  })

  test('the kept names stay bounded however many leases pass, and stay right', () => {
    const channels = new Channels('p')
    const kept = (channels as unknown as { names: Map<number, string> }).names
    let largest = 0
    for (let prefix = 0; prefix < 10_000; prefix++) {
      assert.equal(channels.of(prefix), `p:c:${prefix}`)
      largest = Math.max(largest, kept.size)
    }
    assert.ok(largest <= 4097, `at most 4097 names kept, was ${largest}`)
    assert.ok(kept.size > 0)
    assert.equal(channels.of(3), 'p:c:3')
  })
})
