import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Membership } from '../../../lib/cluster/membership'
import { beatOf } from '../../helpers/cluster-parts'

describe('cluster membership', () => {
  test('the first heartbeat of a node makes it known (returned once), the next ones refresh it', () => {
    const m = new Membership(1000)
    const fresh = m.heard(beatOf('a', [10, 11], { s: 3, c: 2, h: 'host-a', pid: 11 }), 100)
    assert.deepEqual(fresh, { instance: 'a', slot: 3, prefixes: [10, 11], host: 'host-a', pid: 11, connections: 2, lastSeen: 100, self: false })
    assert.equal(m.heard(beatOf('a', [10, 11, 12], { s: 4, c: 9 }), 200), null)
    const [known] = [...m.values()]
    assert.deepEqual([known.slot, known.prefixes, known.connections, known.lastSeen], [4, [10, 11, 12], 9, 200])
    assert.equal(m.owner(12)?.instance, 'a')
    assert.equal([...m.values()].length, 1)
  })

  test('a prefix a node no longer lists has no owner; one another node lists is not taken from it', () => {
    const m = new Membership(1000)
    m.heard(beatOf('a', [1, 2]), 0)
    m.heard(beatOf('b', [3]), 0)
    m.heard(beatOf('a', [2]), 10)
    assert.equal(m.owner(1), undefined)
    assert.equal(m.owner(2)?.instance, 'a')
    // A prefix two nodes claim (a stale view of a lease that changed hands) goes to the latest claim,
    // and the earlier claimant dropping it later leaves the later one in place.
    m.heard(beatOf('b', [3, 2]), 20)
    assert.equal(m.owner(2)?.instance, 'b')
    m.heard(beatOf('a', []), 30)
    assert.equal(m.owner(2)?.instance, 'b')
    m.remove('a')
    assert.equal(m.owner(2)?.instance, 'b')
  })

  test('remove takes a node and its prefixes out; an unknown one is null', () => {
    const m = new Membership(1000)
    m.heard(beatOf('a', [1, 2]), 0)
    assert.equal(m.remove('nobody'), null)
    assert.equal(m.remove('a')?.instance, 'a')
    assert.deepEqual([m.owner(1), m.owner(2), [...m.values()].length], [undefined, undefined, 0])
    assert.equal(m.remove('a'), null)
    // Back after leaving: known afresh.
    assert.ok(m.heard(beatOf('a', [1]), 50) !== null)
  })

  test('sweep removes and returns the nodes silent for longer than allowed, once', () => {
    const m = new Membership(1000)
    m.heard(beatOf('old', [1]), 0)
    m.heard(beatOf('edge', [2]), 500)
    m.heard(beatOf('new', [3]), 1400)
    assert.deepEqual(m.sweep(1000), [], 'silent exactly as long as allowed: still here')
    assert.deepEqual(m.sweep(1500).map((n) => n.instance), ['old'])
    assert.deepEqual(m.sweep(1500), [], 'gone once')
    assert.equal(m.owner(1), undefined)
    assert.deepEqual(m.sweep(1501).map((n) => n.instance), ['edge'])
    assert.deepEqual([...m.values()].map((n) => n.instance), ['new'])
    assert.equal(m.owner(3)?.instance, 'new')
  })
})
