import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { prefixOf } from '../../../lib/cluster/ids'
import { Membership } from '../../../lib/cluster/membership'
import { beatOf } from '../../helpers/cluster-parts'

const names = (m: Membership): string[] => [...m.values()].map((n) => n.instance).sort()

describe('cluster membership', () => {
  test('the first heartbeat of a node makes it known (returned once), the next ones refresh it', () => {
    const m = new Membership(1000)
    const fresh = m.heard(beatOf('a', [10, 11], { s: 3, c: 2, h: 'host-a', pid: 11 }), 100)
    assert.deepEqual(fresh, { instance: 'a', slot: 3, prefixes: [10, 11], host: 'host-a', pid: 11, connections: 2, lastSeen: 100, self: false })
    assert.equal(m.heard(beatOf('a', [10, 11, 12], { s: 4, c: 9 }), 200), null)
    const known = m.get('a')
    assert.deepEqual([known?.slot, known?.prefixes, known?.connections, known?.lastSeen], [4, [10, 11, 12], 9, 200])
    assert.deepEqual(names(m), ['a'])
    assert.equal(m.get('b'), undefined)
  })

  test('the slot holders read at start are known at once, this node aside; their heartbeat fills in the rest', () => {
    const m = new Membership(1000)
    m.heard(beatOf('beaten', [1], { h: 'h1', pid: 1 }), 10)
    m.learned([
      { instance: 'self', slot: 1, epoch: 5 },
      { instance: 'beaten', slot: 2, epoch: 6 },
      { instance: 'quiet', slot: 9, epoch: 77 }
    ], 'self', 50)
    assert.deepEqual(names(m), ['beaten', 'quiet'])
    assert.deepEqual(m.get('beaten')?.prefixes, [1], 'a node heard already keeps what it said')
    assert.deepEqual(m.get('quiet'), { instance: 'quiet', slot: 9, prefixes: [prefixOf({ slot: 9, epoch: 77 })], host: '', pid: 0, connections: 0, lastSeen: 50, self: false })
    assert.equal(m.heard(beatOf('quiet', [prefixOf({ slot: 9, epoch: 77 })], { s: 9, h: 'h9', pid: 9, c: 4 }), 60), null, 'not new')
    assert.deepEqual([m.get('quiet')?.host, m.get('quiet')?.pid, m.get('quiet')?.connections], ['h9', 9, 4])
  })

  test('silent lists the nodes silent for longer than allowed and leaves them in place', () => {
    const m = new Membership(1000)
    m.heard(beatOf('old', [1]), 0)
    m.heard(beatOf('edge', [2]), 500)
    m.heard(beatOf('new', [3]), 1400)
    assert.deepEqual(m.silent(1000), [], 'silent exactly as long as allowed: not yet')
    assert.deepEqual(m.silent(1500).map((n) => n.instance), ['old'])
    assert.deepEqual(m.silent(1500).map((n) => n.instance), ['old'], 'still there until removed')
    assert.deepEqual(m.silent(1501).map((n) => n.instance), ['old', 'edge'])
    assert.deepEqual(names(m), ['edge', 'new', 'old'])
  })

  test('a node removed (Redis confirmed it gone) has its prefixes refused until it beats again', () => {
    const m = new Membership(1000)
    m.heard(beatOf('a', [1, 2]), 0)
    m.heard(beatOf('b', [3]), 0)
    assert.equal(m.remove('nobody'), null)
    assert.deepEqual([m.gone(1), m.gone(3)], [false, false], 'known or not, a live prefix is not gone')
    assert.equal(m.remove('a')?.instance, 'a')
    assert.equal(m.remove('a'), null)
    assert.deepEqual([m.gone(1), m.gone(2), m.gone(3), m.gone(4)], [true, true, false, false], 'an unknown prefix is not gone either')
    assert.deepEqual(names(m), ['b'])
    // Back (it had stalled): known afresh, its prefixes reach it again.
    assert.ok(m.heard(beatOf('a', [2]), 50) !== null)
    assert.deepEqual([m.gone(1), m.gone(2)], [true, false])
    m.learned([{ instance: 'c', slot: 0, epoch: 1 }], 'self', 60)
    m.remove('c')
    assert.equal(m.gone(prefixOf({ slot: 0, epoch: 1 })), true)
    m.learned([{ instance: 'c2', slot: 0, epoch: 1 }], 'self', 70)
    assert.equal(m.gone(prefixOf({ slot: 0, epoch: 1 })), false)
  })

  test('the prefixes of gone nodes are kept bounded', () => {
    const m = new Membership(1000)
    const many = (from: number): number[] => Array.from({ length: 3000 }, (_, i) => from + i)
    m.heard(beatOf('a', many(0)), 0)
    m.heard(beatOf('b', many(10_000)), 0)
    m.remove('a')
    m.remove('b')
    assert.deepEqual([m.gone(0), m.gone(2999), m.gone(10_000), m.gone(12_999)], [false, false, true, true])
  })
})
