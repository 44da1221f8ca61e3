import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { COUNTER_BITS, EPOCH_BITS, epochAt, idPrefix, leaseOf, makeId, MAX_COUNTER, MAX_SLOTS, prefixOf, SLOT_BITS } from '../../../lib/cluster/ids'

const LAST_EPOCH = 2 ** EPOCH_BITS - 1

describe('cluster ids', () => {
  test('slot, epoch and counter fill a safe integer exactly: the last id of the last lease is 2^53 - 1', () => {
    assert.equal(SLOT_BITS + EPOCH_BITS + COUNTER_BITS, 53)
    assert.deepEqual([MAX_SLOTS, MAX_COUNTER], [256, 2 ** 23 - 1])
    const lastLease = prefixOf({ slot: MAX_SLOTS - 1, epoch: LAST_EPOCH })
    const last = makeId(lastLease, MAX_COUNTER)
    assert.equal(last, Number.MAX_SAFE_INTEGER)
    assert.equal(idPrefix(last), lastLease)
    assert.deepEqual(leaseOf(idPrefix(last)), { slot: 255, epoch: LAST_EPOCH })
    // One past it is no id: 2^53 is not a safe integer, so it cannot name a lease.
    assert.equal(idPrefix(last + 1), -1)
    assert.equal(idPrefix(2 ** 53 + 2), -1)
  })

  test('every id names its lease and counter, at the edges of each field', () => {
    let checked = 0
    for (const slot of [0, 1, 127, 128, 255]) {
      for (const epoch of [0, 1, 2 ** 21, LAST_EPOCH]) {
        const prefix = prefixOf({ slot, epoch })
        assert.deepEqual(leaseOf(prefix), { slot, epoch })
        for (const counter of [1, 2, 2 ** 22, MAX_COUNTER]) {
          const id = makeId(prefix, counter)
          assert.ok(Number.isSafeInteger(id) && id > 0, `${id} is a safe positive integer`)
          assert.equal(idPrefix(id), prefix)
          assert.equal(id % 2 ** COUNTER_BITS, counter)
          checked++
        }
      }
    }
    assert.equal(checked, 5 * 4 * 4)
  })

  test('leases never share an id: neighbouring prefixes, and slot and epoch never alias', () => {
    const prefix = prefixOf({ slot: 3, epoch: 9 })
    // The counter starts at 1 (leases.ts), so the last id of one lease and the first of the next differ by 2.
    assert.equal(makeId(prefix + 1, 1) - makeId(prefix, MAX_COUNTER), 2)
    assert.notEqual(prefixOf({ slot: 3, epoch: 10 }), prefix)
    assert.notEqual(prefixOf({ slot: 4, epoch: 9 }), prefix)
    assert.equal(prefixOf({ slot: 1, epoch: 0 }), prefixOf({ slot: 0, epoch: LAST_EPOCH }) + 1)
    // Every (slot, epoch) pair has its own prefix.
    const seen = new Set<number>()
    for (const slot of [0, 1, 2, 254, 255]) for (const epoch of [0, 1, LAST_EPOCH - 1, LAST_EPOCH]) seen.add(prefixOf({ slot, epoch }))
    assert.equal(seen.size, 20)
  })

  test('a value that is no cluster id has prefix -1; the smallest id has prefix 0', () => {
    // 2 ** 51 + 0.5 is the largest x.5 a double holds; 2 ** 52 + 0.5 is already an integer.
    for (const value of [0, -1, -(2 ** 52), 1.5, 2 ** 51 + 0.5, Number.MAX_SAFE_INTEGER + 0.5, 2 ** 53, Number.NaN, Infinity, -Infinity]) {
      assert.equal(idPrefix(value), -1, String(value))
    }
    assert.equal(idPrefix(1), 0)
    assert.equal(idPrefix(MAX_COUNTER), 0)
    assert.equal(idPrefix(MAX_COUNTER + 1), 1)
  })

  test('the epoch is the second the lease was taken, wrapping after 2^22 s (about 48 days)', () => {
    assert.deepEqual([epochAt(0), epochAt(999), epochAt(1000), epochAt(1999), epochAt(2000)], [0, 0, 1, 1, 2])
    assert.equal(epochAt(2 ** 22 * 1000 - 1), LAST_EPOCH)
    assert.equal(epochAt(2 ** 22 * 1000), 0)
    assert.equal(epochAt(2 ** 22 * 1000 + 5500), 5)
    assert.ok(2 ** 22 / 86400 > 48 && 2 ** 22 / 86400 < 49)
    const now = epochAt(Date.now())
    assert.ok(Number.isInteger(now) && now >= 0 && now <= LAST_EPOCH)
    // Taken in two different seconds, two leases on one slot have two prefixes.
    const t = Date.now()
    assert.notEqual(prefixOf({ slot: 9, epoch: epochAt(t) }), prefixOf({ slot: 9, epoch: epochAt(t + 1000) }))
  })
})
