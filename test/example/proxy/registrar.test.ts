import assert from 'node:assert/strict'
import { test } from 'node:test'
import { contactKey, Registrar } from '../../../example/proxy/registrar'
import { parseUri } from '../../../example/sip/uri'

function contact (text: string): { uri: string, parsed: NonNullable<ReturnType<typeof parseUri>> } {
  const parsed = parseUri(text)
  assert.ok(parsed !== null)
  return { uri: text, parsed }
}

test('bindings expire when read, with no timer', () => {
  let now = 1_000_000
  const registrar = new Registrar(32, () => now)
  const a = contact('sip:a1@x.invalid;transport=ws')
  assert.equal(registrar.update('alice', 1, a.uri, a.parsed, new Map(), 60), true)
  assert.equal(registrar.lookup('alice')?.connectionId, 1)
  assert.equal(registrar.lookupContact(parseUri('sip:a1@X.INVALID')!)?.aor, 'alice', 'hosts compare case-insensitively')
  assert.equal(registrar.contactValue(registrar.lookup('alice')!), '<sip:a1@x.invalid;transport=ws>;expires=60')
  now += 59_999
  assert.equal(registrar.contactValue(registrar.lookup('alice')!), '<sip:a1@x.invalid;transport=ws>;expires=1')
  now += 1
  assert.equal(registrar.lookup('alice'), undefined)
  assert.equal(registrar.lookupContact(a.parsed), undefined)
  assert.equal(registrar.size, 0)
})

test('the newest binding wins; a refresh replaces, expires 0 removes; a closed connection takes its own', () => {
  const registrar = new Registrar()
  const a = contact('sip:a1@x.invalid')
  const b = contact('sip:a2@y.invalid')
  registrar.update('alice', 1, a.uri, a.parsed, new Map(), 600)
  registrar.update('alice', 2, b.uri, b.parsed, new Map(), 600)
  assert.equal(registrar.lookup('alice')?.connectionId, 2)
  registrar.update('alice', 1, a.uri, a.parsed, new Map(), 600)
  assert.deepEqual(registrar.bindings('alice').map((x) => x.connectionId), [2, 1], 'a refresh moves to the end')
  registrar.update('alice', 1, a.uri, a.parsed, new Map(), 0)
  assert.deepEqual(registrar.bindings('alice').map((x) => x.connectionId), [2])
  assert.deepEqual(registrar.dropConnection(2), ['alice'])
  assert.equal(registrar.lookup('alice'), undefined)
  assert.deepEqual(registrar.dropConnection(2), [])
})

test('a connection holds at most maxPerConnection bindings', () => {
  const registrar = new Registrar(2)
  for (let i = 0; i < 2; i++) {
    const c = contact(`sip:c${i}@x.invalid`)
    assert.equal(registrar.update(`user${i}`, 7, c.uri, c.parsed, new Map(), 60), true)
  }
  const extra = contact('sip:c9@x.invalid')
  assert.equal(registrar.update('user9', 7, extra.uri, extra.parsed, new Map(), 60), false)
  assert.equal(registrar.update('user9', 8, extra.uri, extra.parsed, new Map(), 60), true, 'another connection is not limited by it')
})

test('the listener hears every binding made, refreshed and removed by a UA or with its connection, not expiries', () => {
  let now = 1_000_000
  const heard: string[] = []
  const registrar = new Registrar(32, () => now, {
    saved: (b) => { heard.push(`saved ${b.aor} ${b.connectionId}`) },
    removed: (b) => { heard.push(`removed ${b.aor} ${b.connectionId}`) }
  })
  const a = contact('sip:a1@x.invalid')
  const b = contact('sip:a2@y.invalid')
  const c = contact('sip:c1@z.invalid')
  registrar.update('alice', 1, a.uri, a.parsed, new Map(), 60)
  registrar.update('alice', 1, a.uri, a.parsed, new Map(), 120)
  registrar.update('alice', 2, b.uri, b.parsed, new Map(), 60)
  registrar.update('carol', 3, c.uri, c.parsed, new Map(), 10)
  assert.deepEqual([...registrar.all()].map((x) => x.aor).sort(), ['alice', 'alice', 'carol'])
  now += 10_000
  assert.deepEqual([...registrar.all()].map((x) => x.aor), ['alice', 'alice'], 'all() leaves out what expired')
  registrar.removeAll('alice')
  assert.deepEqual(registrar.bindings('alice'), [], 'every binding of the AOR went')
  registrar.update('alice', 1, a.uri, a.parsed, new Map(), 60)
  registrar.update('alice', 1, a.uri, a.parsed, new Map(), 0)
  registrar.update('alice', 4, a.uri, a.parsed, new Map(), 60)
  registrar.dropConnection(4)
  assert.deepEqual(heard, [
    'saved alice 1', 'saved alice 1', 'saved alice 2', 'saved carol 3',
    'removed alice 1', 'removed alice 2',
    'saved alice 1', 'removed alice 1', 'saved alice 4', 'removed alice 4'
  ])
})

test('contactKey compares contacts as RFC 3261 §19.1.4 does: escapes resolved, host case aside, the port counted', () => {
  const key = (uri: string): string => contactKey(parseUri(uri) ?? assert.fail(uri))
  assert.equal(key('sip:%61lice@X.invalid'), key('sip:alice@x.invalid'))
  assert.notEqual(key('sip:Alice@x.invalid'), key('sip:alice@x.invalid'), 'the user is case-sensitive')
  assert.notEqual(key('sip:127.0.0.1:5091'), key('sip:127.0.0.1:5092'))
  assert.notEqual(key('sip:127.0.0.1'), key('sip:127.0.0.1:5060'))
  const registrar = new Registrar()
  const phone = parseUri('sip:127.0.0.1:5091') ?? assert.fail()
  registrar.update('phone', 1, 'sip:127.0.0.1:5091', phone, new Map(), 60)
  assert.equal(registrar.lookupContact(parseUri('sip:127.0.0.1:5091;transport=udp') ?? assert.fail())?.aor, 'phone', 'a user-less contact is found by host and port')
  assert.equal(registrar.lookupContact(parseUri('sip:127.0.0.1:5092') ?? assert.fail()), undefined)
})
