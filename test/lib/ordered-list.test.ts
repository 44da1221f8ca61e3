import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Link, OrderedList } from '../../lib/ordered-list'
import { fuzzSeed, Rng } from '../helpers/random'

/** The owners from head to tail, and from tail to head reversed: both must agree. */
function walk<T> (list: OrderedList<T>): T[] {
  const forward: T[] = []
  for (let link = list.head; link !== null; link = link.next) forward.push(link.owner)
  const backward: T[] = []
  for (let link = list.tail; link !== null; link = link.prev) backward.unshift(link.owner)
  assert.deepEqual(backward, forward, 'prev links mirror next links')
  assert.equal(list.head?.prev ?? null, null, 'nothing before the head')
  assert.equal(list.tail?.next ?? null, null, 'nothing after the tail')
  return forward
}

function links (...names: string[]): Array<Link<string>> {
  return names.map((name) => new Link(name))
}

describe('OrderedList', () => {
  test('starts empty; appends keep their order from head (oldest) to tail (newest)', () => {
    const list = new OrderedList<string>()
    assert.deepEqual([list.head, list.tail], [null, null])
    const [a, b, c] = links('a', 'b', 'c')
    assert.equal(a.linked, false)
    list.moveToTail(a)
    assert.deepEqual(walk(list), ['a'])
    assert.equal(list.head, a)
    assert.equal(list.tail, a)
    list.moveToTail(b)
    list.moveToTail(c)
    assert.deepEqual(walk(list), ['a', 'b', 'c'])
    assert.deepEqual([a.linked, b.linked, c.linked], [true, true, true])
  })

  test('moving the head, a middle link or the tail to the tail', () => {
    const list = new OrderedList<string>()
    const [a, b, c, d] = links('a', 'b', 'c', 'd')
    for (const link of [a, b, c, d]) list.moveToTail(link)
    list.moveToTail(a)
    assert.deepEqual(walk(list), ['b', 'c', 'd', 'a'])
    list.moveToTail(c)
    assert.deepEqual(walk(list), ['b', 'd', 'a', 'c'])
    list.moveToTail(c)
    assert.deepEqual(walk(list), ['b', 'd', 'a', 'c'], 'the tail stays where it is')
    assert.equal(list.head, b)
    assert.equal(list.tail, c)
  })

  test('unlinking the head, a middle link, the tail and the last one', () => {
    const list = new OrderedList<string>()
    const [a, b, c, d] = links('a', 'b', 'c', 'd')
    for (const link of [a, b, c, d]) list.moveToTail(link)
    list.unlink(b)
    assert.deepEqual(walk(list), ['a', 'c', 'd'])
    assert.deepEqual([b.prev, b.next, b.linked], [null, null, false], 'an unlinked link holds no neighbour')
    list.unlink(a)
    assert.deepEqual(walk(list), ['c', 'd'])
    assert.equal(list.head, c)
    list.unlink(d)
    assert.deepEqual(walk(list), ['c'])
    assert.equal(list.tail, c)
    list.unlink(c)
    assert.deepEqual(walk(list), [])
    assert.deepEqual([list.head, list.tail], [null, null])
    // An unlinked link goes back in at the tail.
    list.moveToTail(b)
    list.moveToTail(a)
    assert.deepEqual(walk(list), ['b', 'a'])
  })

  test('unlinking a link that is not in the list leaves the ends alone', () => {
    const list = new OrderedList<string>()
    const [a, b, stray] = links('a', 'b', 'stray')
    list.moveToTail(a)
    list.moveToTail(b)
    // A stray link has no neighbours: unlinked without the guard, it would look like the only one.
    list.unlink(stray)
    list.unlink(stray)
    assert.deepEqual(walk(list), ['a', 'b'])
    list.unlink(a)
    list.unlink(a)
    assert.deepEqual(walk(list), ['b'])
    assert.equal(list.head, b)
  })

  test('an owner in two orders has one link in each, and moving in one leaves the other as it was', () => {
    const byUse = new OrderedList<string>()
    const byDue = new OrderedList<string>()
    const owners = ['x', 'y', 'z'].map((name) => ({ name, used: new Link(name), due: new Link(name) }))
    for (const o of owners) { byUse.moveToTail(o.used); byDue.moveToTail(o.due) }
    byUse.moveToTail(owners[0].used)
    byDue.unlink(owners[1].due)
    assert.deepEqual(walk(byUse), ['y', 'z', 'x'])
    assert.deepEqual(walk(byDue), ['x', 'z'])
    assert.equal(owners[1].used.linked, true)
  })

  test('random moves and unlinks agree with an array kept the slow way', () => {
    const seed = fuzzSeed()
    const rng = new Rng(seed)
    const list = new OrderedList<number>()
    const all = Array.from({ length: 12 }, (_, i) => new Link(i))
    let model: number[] = []
    for (let step = 0; step < 3000; step++) {
      const link = rng.pick(all)
      if (rng.bool(0.7)) {
        list.moveToTail(link)
        model = [...model.filter((n) => n !== link.owner), link.owner]
      } else {
        list.unlink(link)
        model = model.filter((n) => n !== link.owner)
      }
      assert.deepEqual(walk(list), model, `seed ${seed}, step ${step}`)
      for (const l of all) assert.equal(l.linked, model.includes(l.owner), `seed ${seed}, step ${step}: link ${l.owner}`)
    }
  })
})
