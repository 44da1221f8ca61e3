import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Job, JobQueue } from '../../../lib/lwsc/job'

const ignore = (): void => {}
const jobs = (n: number): Job[] => Array.from({ length: n }, (_, i) => new Job(`m${i}`, i % 2 === 0, ignore, ignore))

/** The jobs from `takeAll`'s head, following `next`. */
function chain (head: Job | null): Job[] {
  const out: Job[] = []
  for (let job = head; job !== null; job = job.next) out.push(job)
  return out
}

describe('Job', () => {
  test('carries its data, whether it waits for a reply, and how it settles', () => {
    const settled: unknown[] = []
    const job = new Job(Buffer.from([1, 2]), true, (v) => { settled.push(['resolved', v]) }, (err) => { settled.push(['rejected', err.message]) })
    assert.deepEqual(job.data, Buffer.from([1, 2]))
    assert.equal(job.expectsReply, true)
    assert.equal(job.next, null)
    job.resolve('reply')
    job.reject(new Error('late'))
    assert.deepEqual(settled, [['resolved', 'reply'], ['rejected', 'late']])
  })
})

describe('JobQueue', () => {
  test('first in, first out; shift on an empty queue gives null', () => {
    const q = new JobQueue()
    assert.equal(q.shift(), null)
    const [a, b, c] = jobs(3)
    q.push(a)
    q.push(b)
    assert.equal(q.length, 2)
    assert.equal(q.shift(), a)
    q.push(c)
    assert.deepEqual([q.shift(), q.shift(), q.shift()], [b, c, null])
    assert.equal(q.length, 0)
  })

  test('a job leaves the queue unlinked, so a stale `next` never brings others back', () => {
    const q = new JobQueue()
    const [a, b, c] = jobs(3)
    q.push(a)
    q.push(b)
    const first = q.shift() as Job
    assert.equal(first.next, null)
    // Pushed again while it still pointed somewhere (a job moved from another queue): the link is reset.
    c.next = b
    const other = new JobQueue()
    other.push(c)
    assert.equal(c.next, null)
    assert.deepEqual([other.shift(), other.shift()], [c, null])
  })

  test('takeAll empties the queue and hands back its jobs in order, linked by `next`', () => {
    const q = new JobQueue()
    const all = jobs(5)
    for (const job of all) q.push(job)
    const head = q.takeAll()
    assert.equal(q.length, 0)
    assert.equal(q.shift(), null)
    assert.deepEqual(chain(head), all)
    assert.equal(q.takeAll(), null, 'nothing left to take')
    // Still usable after.
    const [x] = jobs(1)
    q.push(x)
    assert.deepEqual([q.length, q.shift()], [1, x])
  })

  test('length follows pushes and shifts over many jobs', () => {
    const q = new JobQueue()
    const all = jobs(1000)
    all.forEach((job, i) => {
      q.push(job)
      if (i % 3 === 2) q.shift()
    })
    assert.equal(q.length, 1000 - 333)
    assert.deepEqual(chain(q.takeAll()), all.slice(333))
  })
})
