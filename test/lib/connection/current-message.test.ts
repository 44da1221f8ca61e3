import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { CurrentMessage } from '../../../lib/connection/current-message'
import type { ConnectionInfo } from '../../../lib'
import { Connection } from '../../../lib/connection/connection'
import { Stats } from '../../../lib/connection/stats'
import { connect, nextMessage, startApp } from '../../helpers/server'

/** Lets the wall clock move on by `ms` (a few milliseconds): a hook that takes that long to run. */
function busyFor (ms: number): number {
  const until = Date.now() + ms
  while (Date.now() < until) { /* the hook's own work */ }
  return Date.now()
}

describe('CurrentMessage', () => {
  test('outside a message it reads the clock afresh each time', () => {
    const clock = new CurrentMessage()
    const before = Date.now()
    const read = clock.now()
    assert.ok(read >= before && read <= Date.now())
    const later = busyFor(3)
    assert.ok(clock.now() >= later, 'a fresh reading, not the first one kept')
  })

  test('between begin and end it gives the message\'s time; after end, fresh readings again', () => {
    const clock = new CurrentMessage()
    clock.begin(1234)
    assert.equal(clock.now(), 1234)
    busyFor(2)
    assert.equal(clock.now(), 1234, 'the same time for every send of that message')
    clock.begin(5678)
    assert.equal(clock.now(), 5678, 'the next message brings its own time')
    clock.end()
    const after = clock.now()
    assert.ok(Math.abs(after - Date.now()) <= 1, `fresh after end, got ${after}`)
    // 0 is no message's time: it stands for "outside a message".
    clock.begin(0)
    assert.ok(clock.now() >= after, 'begin(0) reads the clock')
  })

  test('gives the message\'s connection for its own id only, and none outside a message', () => {
    const current = new CurrentMessage()
    const counters = new Stats([]).forProtocol('sip')
    const address = { remoteAddress: '127.0.0.1', remotePort: 5000, localAddress: '127.0.0.1', localPort: 80, transport: 'ws' as const }
    const conn = new Connection(7, address, 'sip', null, counters, 1)
    assert.equal(current.connection(7), null, 'no message is being handled')
    current.begin(1234, conn)
    assert.equal(current.connection(7), conn)
    assert.equal(current.connection(8), null, 'another id is looked up, not taken for this one')
    current.end()
    assert.equal(current.connection(7), null, 'after end, nothing')
    current.begin(1234)
    assert.equal(current.connection(7), null, 'a message with no connection (begin without one)')
  })

  test('through the plugin: a sync hook reaches its own connection, another one, and none once its own is closing', async () => {
    const results: Array<[string, boolean]> = []
    const ids: number[] = []
    const s = await startApp({}, (app) => {
      app.addWsHook('websocket:open', (ev) => { ids.push(ev.id) })
      app.addWsHook('websocket:message', (m) => {
        if (m.data === 'both') {
          const other = ids.find((id) => id !== m.id) as number
          results.push(['own', app.wsSend(m.id, 'to you')], ['other', app.wsSend(other, 'to the other')])
        }
        if (m.data === 'close first') {
          app.wsClose(m.id)
          results.push(['closing', app.wsSend(m.id, 'too late')])
        }
      })
    })
    try {
      const a = await connect(s.url)
      const b = await connect(s.url)
      const toB = nextMessage(b)
      a.send('both')
      assert.equal(String((await nextMessage(a)).data), 'to you')
      assert.equal(String((await toB).data), 'to the other')
      const closed = new Promise<number>((resolve) => { b.once('close', resolve) })
      b.send('close first')
      assert.equal(await closed, 1000)
      assert.deepEqual(results, [['own', true], ['other', true], ['closing', false]])
      a.terminate()
    } finally { await s.app.close() }
  })

  test('through the plugin: a reply a sync hook sends takes its message\'s time; one sent after an await reads the clock', async () => {
    const seen: Array<{ kind: string, before: ConnectionInfo, after: ConnectionInfo, sentAt: number }> = []
    const s = await startApp({}, (app) => {
      app.addWsHook('websocket:message', (m) => {
        if (m.data !== 'sync') return
        const before = app.wsConnection(m.id) as ConnectionInfo
        const sentAt = busyFor(5)
        app.wsSend(m.id, 'sync reply')
        seen.push({ kind: 'sync', before, after: app.wsConnection(m.id) as ConnectionInfo, sentAt })
      })
      app.addWsHook('websocket:message', async (m) => {
        if (m.data !== 'async') return
        const before = app.wsConnection(m.id) as ConnectionInfo
        await Promise.resolve()
        const sentAt = busyFor(5)
        app.wsSend(m.id, 'async reply')
        seen.push({ kind: 'async', before, after: app.wsConnection(m.id) as ConnectionInfo, sentAt })
      })
    })
    try {
      const ws = await connect(s.url)
      for (const kind of ['sync', 'async']) {
        ws.send(kind)
        assert.equal(String((await nextMessage(ws)).data), `${kind} reply`)
      }
      const [sync, later] = seen
      assert.ok(sync.sentAt > sync.before.lastUsed, 'the clock moved on while the hook ran')
      assert.equal(sync.after.lastUsed, sync.before.lastUsed, 'the sync reply is stamped with its message\'s time')
      assert.ok(later.after.lastUsed >= later.sentAt, 'the reply sent after an await is stamped when it was sent')
      ws.terminate()
    } finally { await s.app.close() }
  })
})
