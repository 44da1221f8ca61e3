import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Recent } from '../../../example/proxy/recent'

test('a value lives its lifetime, then is gone', () => {
  let now = 0
  const recent = new Recent<string>(1000, 10, () => now)
  recent.set('a', 'x')
  assert.equal(recent.get('a'), 'x')
  assert.equal(recent.get('b'), undefined)
  now = 999
  assert.equal(recent.get('a'), 'x')
  now = 1000
  assert.equal(recent.get('a'), undefined)
})

test('setting clears the expired and keeps at most maxEntries, the oldest going first; setting again renews', () => {
  let now = 0
  const recent = new Recent<number>(1000, 2, () => now)
  recent.set('a', 1)
  recent.set('b', 2)
  recent.set('a', 3)
  recent.set('c', 4)
  assert.deepEqual([recent.get('a'), recent.get('b'), recent.get('c')], [3, undefined, 4], 'b was the oldest once a was set again')
  now = 2000
  recent.set('d', 5)
  assert.equal(recent.size, 1)
})
