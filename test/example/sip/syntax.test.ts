import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CALL_ID, decodeText, quotedEnd, splitOutside, TOKEN, unescapeUri, unquote } from '../../../example/sip/syntax'

test('TOKEN and CALL_ID: the character classes of RFC 3261 §25.1', () => {
  assert.ok(TOKEN.test("!interesting-Method0123456789_*+`.%indeed'~"))
  assert.ok(!TOKEN.test('a b'))
  assert.ok(!TOKEN.test('a:b'))
  assert.ok(CALL_ID.test("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"), 'RFC 4475 §3.1.1.2')
  assert.ok(!CALL_ID.test('a@b@c'))
  assert.ok(!CALL_ID.test('a b'))
})

test('quotedEnd and unquote: quoted-pairs do not close a quoted string', () => {
  assert.equal(quotedEnd('"J Rosenberg \\\\\\"" <sip:x>', 0), 18)
  assert.equal(unquote('"J Rosenberg \\\\\\""'), 'J Rosenberg \\"')
  assert.equal(quotedEnd('"open', 0), -1)
  assert.equal(quotedEnd('"ends in a backslash\\', 0), -1)
})

test('splitOutside: separators inside quotes and <...> are not separators; empty parts are kept', () => {
  assert.deepEqual(splitOutside('"a,b" <sip:x;p=1,2>, c,,d', ','), ['"a,b" <sip:x;p=1,2>', ' c', '', 'd'])
  assert.deepEqual(splitOutside(';a="x;y";b', ';'), ['', 'a="x;y"', 'b'])
})

test('unescapeUri: %XX to octets read as UTF-8 (Latin-1 when not); a bad escape is null', () => {
  assert.equal(unescapeUri('%75se%72'), 'user')
  assert.equal(unescapeUri('caf%C3%A9'), 'café')
  assert.equal(unescapeUri('caf%E9'), 'café')
  assert.equal(unescapeUri('100%'), null)
  assert.equal(unescapeUri('%ZK'), null)
})

test('decodeText: UTF-8, or Latin-1 byte for byte', () => {
  assert.equal(decodeText(Buffer.from('☃')), '☃')
  assert.equal(Buffer.from(decodeText(Buffer.from([0xff, 0x41])), 'latin1').toString('hex'), 'ff41')
})
