import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { dumpOrder } from '../../../lib/arguments'
import type { Connection } from '../../../lib/connection/connection'
import type { Registry } from '../../../lib/connection/registry'
import { entry, registry as newRegistry } from '../../helpers/connections'
import { connect, startApp } from '../../helpers/server'

function synthetic (registry: Registry, now: number): Connection {
  const id = registry.nextId()
  const conn = entry(id, now, { remoteAddress: `10.0.${id >> 8 & 255}.${id & 255}`, remotePort: 40000 + (id % 20000), localPort: 8080 })
  registry.add(conn)
  return conn
}

/** The last-used order, least recently used first (what `used_desc` lists). */
function order (registry: Registry): number[] {
  return registry.dump('used_desc', 0, Infinity).connections.map((c) => c.id)
}

describe('Registry', () => {
  test('ids are unique and increasing; lookup by id', () => {
    const r = newRegistry()
    const a = synthetic(r, 1)
    const b = synthetic(r, 2)
    assert.ok(b.id > a.id)
    assert.equal(r.get(a.id), a)
    assert.equal(r.get(12345), undefined)
    r.remove(a)
    const c = synthetic(r, 3)
    assert.ok(c.id > b.id, 'ids are never reused')
    assert.equal(r.size, 2)
  })

  test('touch moves a connection to the most recently used end; remove unlinks', () => {
    const r = newRegistry()
    const [a, b, c] = [synthetic(r, 1), synthetic(r, 2), synthetic(r, 3)]
    assert.deepEqual(order(r), [a.id, b.id, c.id])
    r.touch(a, 10)
    assert.deepEqual(order(r), [b.id, c.id, a.id])
    r.touch(c, 11)
    assert.deepEqual(order(r), [b.id, a.id, c.id])
    r.remove(a)
    assert.deepEqual(order(r), [b.id, c.id])
    assert.equal(r.remove(a), false, 'a second remove is a no-op')
    r.remove(b); r.remove(c)
    assert.deepEqual(order(r), [])
    assert.deepEqual(r.dump('used_asc', 0).connections, [])
  })

  test('dump orders: id_hash (ascending id), used_desc, used_asc; at most 50, truncated flag', () => {
    const r = newRegistry()
    const conns = Array.from({ length: 120 }, (_, i) => synthetic(r, 1000 + i))
    // Use them in reverse, so last-used order is the opposite of id order.
    for (let i = conns.length - 1; i >= 0; i--) r.touch(conns[i], 5000 - i)
    const now = 10_000
    const byId = r.dump('id_hash', now)
    assert.equal(byId.connections.length, 50)
    assert.equal(byId.wscounter, 120)
    assert.equal(byId.truncated, true)
    assert.deepEqual(byId.connections.map((c) => c.id), conns.slice(0, 50).map((c) => c.id))
    // used_asc: ascending "last used Ns ago", the most recently used first (as Kamailio 5.6 lists it).
    assert.deepEqual(r.dump('used_asc', now).connections.map((c) => c.id), conns.slice(0, 50).map((c) => c.id))
    assert.deepEqual(r.dump('used_desc', now).connections.map((c) => c.id), conns.slice(-50).reverse().map((c) => c.id))
    assert.equal(r.dump('used_desc', now).connections[0].lastUsedAgo, 5)
    assert.throws(() => r.dump(dumpOrder('by_name')), { code: 'FST_SIPWS_BAD_DUMP_ORDER', message: /Bad display order parameter/ })
    for (const c of conns.slice(10)) r.remove(c)
    const small = r.dump(undefined, now)
    assert.deepEqual([small.connections.length, small.truncated, small.wscounter], [10, false, 10])
  })

  test('per-address counts follow adds and removes', () => {
    const r = newRegistry()
    const a = entry(r.nextId(), 0, { remoteAddress: '127.0.0.2', remotePort: 1, localAddress: '', localPort: 0 })
    const b = entry(r.nextId(), 0, { remoteAddress: '127.0.0.2', remotePort: 2, localAddress: '', localPort: 0 })
    r.add(a); r.add(b)
    assert.equal(r.countFrom('127.0.0.2'), 2)
    r.remove(a)
    assert.equal(r.countFrom('127.0.0.2'), 1)
    r.remove(b)
    assert.equal(r.countFrom('127.0.0.2'), 0)
  })
})

describe('registry through the plugin', () => {
  test('each connection gets its own id, addresses, sub-protocol, state and times', async () => {
    const s = await startApp()
    try {
      const before = Date.now()
      const a = await connect(s.url, 'sip')
      const b = await connect(s.url, 'msrp')
      const dump = s.app.wsDump()
      assert.equal(dump.wscounter, 2)
      const [ia, ib] = dump.connections
      assert.notEqual(ia.id, ib.id)
      assert.deepEqual([ia.subProtocol, ib.subProtocol], ['sip', 'msrp'])
      for (const info of [ia, ib]) {
        assert.equal(info.state, 'OPEN')
        assert.equal(info.remoteAddress, '127.0.0.1')
        assert.equal(info.localAddress, '127.0.0.1')
        assert.equal(info.localPort, s.port)
        assert.equal(info.transport, 'ws')
        assert.ok(info.createdAt >= before && info.lastUsed >= info.createdAt)
        assert.deepEqual(s.app.wsConnection(info.id), info)
      }
      assert.deepEqual(new Set([ia.remotePort, ib.remotePort]), new Set([(a as unknown as { _socket: { localPort: number } })._socket.localPort, (b as unknown as { _socket: { localPort: number } })._socket.localPort]))
      a.terminate(); b.terminate()
    } finally { await s.app.close() }
  })

  test('a message makes its connection the most recently used', async () => {
    const s = await startApp({}, (app) => { app.addWsHook('websocket:message', (m) => { app.wsSend(m.id, 'ok') }) })
    try {
      const a = await connect(s.url)
      const b = await connect(s.url)
      const [ia, ib] = s.app.wsDump('id_hash').connections.map((c) => c.id)
      assert.deepEqual(s.app.wsDump('used_asc').connections.map((c) => c.id), [ib, ia])
      a.send('x')
      await new Promise((resolve) => a.once('message', resolve))
      assert.deepEqual(s.app.wsDump('used_asc').connections.map((c) => c.id), [ia, ib])
      assert.deepEqual(s.app.wsDump('used_desc').connections.map((c) => c.id), [ib, ia])
      a.terminate(); b.terminate()
    } finally { await s.app.close() }
  })
})
