import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { backoffDelay } from '../../../lib/lwsc/backoff'

describe('backoffDelay', () => {
  test('backoff doubles from min and stops at max', () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 50].map((n) => backoffDelay(n, 100, 2000)), [0, 100, 200, 400, 800, 1600, 2000, 2000])
  })

  test('no failure, or a count below one, waits nothing', () => {
    assert.deepEqual([0, -1, -1000].map((n) => backoffDelay(n, 100, 2000)), [0, 0, 0])
  })

  test('min equal to max waits the same after every failure', () => {
    assert.deepEqual([1, 2, 10, 1000].map((n) => backoffDelay(n, 150, 150)), [150, 150, 150, 150])
  })

  test('any number of failures gives a finite delay: the exponent stops at 2^20', () => {
    for (const failures of [21, 22, 1100, 1e9, Number.MAX_SAFE_INTEGER]) {
      assert.equal(backoffDelay(failures, 100, 2000), 2000, String(failures))
      // Without a max the cap shows: a thousand failures do not overflow to Infinity.
      assert.equal(backoffDelay(failures, 1, Number.MAX_VALUE), 2 ** 20, String(failures))
    }
    assert.equal(backoffDelay(20, 1, Number.MAX_VALUE), 2 ** 19, 'below the cap it still doubles')
  })

  test('the delay never decreases as failures go on', () => {
    let last = 0
    for (let failures = 0; failures <= 40; failures++) {
      const delay = backoffDelay(failures, 7, 100_000)
      assert.ok(delay >= last, `${failures}: ${delay} after ${last}`)
      assert.ok(delay <= 100_000)
      last = delay
    }
  })
})
