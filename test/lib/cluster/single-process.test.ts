import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { expectTypeOf } from 'expect-type'
import type { Cluster } from '../../../lib/cluster/seam'
import { SingleProcess } from '../../../lib/cluster/single-process'
import { localOf } from '../../helpers/cluster-parts'
import { connect, startApp } from '../../helpers/server'

describe('one process alone', () => {
  test('it is a Cluster named after the process', () => {
    expectTypeOf<SingleProcess>().toMatchTypeOf<Cluster>()
    assert.equal(new SingleProcess().instance, `local-${process.pid}`)
  })

  test('ids count from 1, each process on its own; a closed id is never given again', () => {
    const one = new SingleProcess()
    const other = new SingleProcess()
    assert.deepEqual([one.ids.nextId(), one.ids.nextId(), one.ids.nextId()], [1, 2, 3])
    one.ids.released(3)
    one.ids.released(2)
    assert.equal(one.ids.nextId(), 4)
    assert.equal(other.ids.nextId(), 1)
  })

  test('no other process holds connections: every remote call reaches nobody', async () => {
    const { remote } = new SingleProcess()
    assert.deepEqual([remote.send(1, 'x'), remote.close(1, 1000, ''), remote.ping(1), remote.pong(1)], [false, false, false, false])
    assert.deepEqual(await Promise.all([remote.confirmSend(1, 'x'), remote.confirmClose(1, 1000, ''), remote.confirmPing(1), remote.confirmPong(1)]), [false, false, false, false])
  })

  test('a view is this process\'s own answer; the node list is this process, with its connections once started', async () => {
    const alone = new SingleProcess()
    const local = { instance: alone.instance, wscounter: 3 }
    assert.deepEqual(await alone.ask({ q: 'dump', o: 'used_asc' }, local), { answers: [local], missing: [] })
    const before = Date.now()
    const [self] = alone.nodes()
    assert.deepEqual({ ...self, lastSeen: 0 }, { instance: alone.instance, slot: -1, prefixes: [], host: '', pid: process.pid, connections: 0, lastSeen: 0, self: true })
    assert.ok(self.lastSeen >= before && self.lastSeen <= Date.now())
    const s = await startApp()
    try {
      const clients = await Promise.all([connect(s.url), connect(s.url)])
      await alone.start(localOf(s.app))
      assert.equal(alone.nodes()[0].connections, 2)
      assert.equal(alone.nodes().length, 1)
      for (const ws of clients) ws.terminate()
      await alone.stop()
      await alone.stop()
    } finally {
      await s.app.close()
    }
  })
})
