import assert from 'node:assert/strict'
import { test } from 'node:test'
import { splitList } from '../../../example/sip/headers'
import { parseSip } from '../../../example/sip/parse'
import { parseNameAddr, parseUri, topRoute } from '../../../example/sip/uri'

test('parseUri: user, password, host, port, params, headers; IPv6; other schemes', () => {
  const uri = parseUri('sip:alice:secret@Example.COM:5060;transport=ws;lr?subject=hi')
  assert.deepEqual(uri, { scheme: 'sip', user: 'alice', password: 'secret', host: 'Example.COM', port: 5060, params: new Map([['transport', 'ws'], ['lr', null]]), headers: 'subject=hi' })
  assert.deepEqual(parseUri('sips:[2001:db8::1]:443')?.host, '[2001:db8::1]')
  assert.equal(parseUri('sip:127.0.0.1;transport=ws')?.user, null)
  assert.equal(parseUri('tel:+1-201-555-0123')?.scheme, 'tel')
  assert.equal(parseUri('soap.beep://192.0.2.103:3002')?.scheme, 'soap.beep')
  for (const bad of ['', 'alice', 'sip:', 'sip:@x', 'sip:a@', 'sip:a@x:99999', 'sip:a@x:port', 'sip:a b@x', 'sip:a@2001:db8::1', 'sip:a@x;', 'sip:a@x;;lr', 'sip:a%zz@x', '<sip:a@x>', 'sip:a@x?Route']) {
    assert.equal(parseUri(bad), null, bad)
  }
})

test('parseUri: the user part unescaped, as URIs compare (RFC 3261 §19.1.4); escaped parameter names too', () => {
  assert.equal(parseUri('sip:%61lice@x')?.user, 'alice')
  assert.equal(parseUri('sip:sips%3Auser%40example.com@example.net')?.user, 'sips:user@example.com')
  assert.equal(parseUri('sip:null-%00-null@example.com')?.user, 'null-\u0000-null')
  assert.equal(parseUri('sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31')?.params.get('lr'), null)
  assert.equal(parseUri('sip:user;par=u%40example.net@example.com')?.user, 'user;par=u@example.net', 'a ; in the user part is the user\'s (RFC 4475 §3.1.1.9)')
  const odd = parseUri("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com")
  assert.equal(odd?.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*", 'a ? before the @ is the user\'s (RFC 4475 §3.1.1.2)')
  assert.equal(odd?.password, "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
  assert.equal(odd?.host, 'example.com')
})

test('parseUri: IPv6 references (RFC 5118)', () => {
  assert.equal(parseUri('sip:[2001:db8::10:5070]')?.port, null, 'a port inside the brackets is part of the address (§4.3)')
  assert.equal(parseUri('sip:[2001:db8::10]:5070')?.port, 5070)
  assert.equal(parseUri('sip:user@[2001:db8:::192.0.2.1]')?.host, '[2001:db8:::192.0.2.1]', 'three colons are tolerated (§4.10)')
  assert.equal(parseUri('sip:2001:db8::10'), null, 'no brackets (§4.2)')
})

test('parseNameAddr: quoted and bare display names, addr-spec whose params are header params', () => {
  assert.deepEqual(parseNameAddr('"Alice \\"A\\"" <sip:alice@x;transport=ws>;tag=9'), { display: 'Alice "A"', uri: 'sip:alice@x;transport=ws', params: new Map([['tag', '9']]) })
  assert.deepEqual(parseNameAddr('Bob <sip:bob@y>'), { display: 'Bob', uri: 'sip:bob@y', params: new Map() })
  assert.deepEqual(parseNameAddr('caller<sip:caller@example.com>;tag=323')?.display, 'caller', 'no LWS before < (RFC 4475 §3.1.1.6)')
  assert.deepEqual(parseNameAddr('sip:carol@z;tag=1;expires=60'), { display: null, uri: 'sip:carol@z', params: new Map([['tag', '1'], ['expires', '60']]) })
  assert.deepEqual(parseNameAddr('sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n'), { display: null, uri: 'sip:vivekg@chair-dnrc.example.com', params: new Map([['tag', '1918181833n']]) }, 'LWS before the ; (RFC 4475 §3.1.1.1)')
  assert.deepEqual(parseNameAddr('<sip:d@w>;+sip.instance="<urn:uuid:1;2>";reg-id=1')?.params.get('+sip.instance'), '"<urn:uuid:1;2>"')
  assert.deepEqual(parseNameAddr('"a <b> c" <sip:d@w>')?.display, 'a <b> c', 'a < inside the quoted display name')
  assert.deepEqual(parseNameAddr('isbn:2983792873')?.uri, 'isbn:2983792873', 'another scheme')
  for (const bad of ['', '<sip:a@x', '<>', '"unterminated <sip:a@x>', '<sip:a@x> junk', 'sip:a b@x', '"Watson, Thomas" < sip:t.watson@example.org >', 'Watson, Thomas <sip:t.watson@example.org>', 'sip:user@example.com?Route=%3Csip:sip.example.com%3E', '"Joe" <sip:joe@example.org>;;;;', '"Joe" sip:joe@example.org']) {
    assert.equal(parseNameAddr(bad), null, bad)
  }
})

test('topRoute: the URI of the first value of the first Route line, or null', () => {
  const routed = parseSip([
    'BYE sip:bob@h SIP/2.0',
    'Route: <sip:TOKEN@127.0.0.1:5070;lr;r2=on>, <sip:127.0.0.1:8080;transport=ws;lr;r2=on>',
    'Route: <sip:core.example;lr>',
    '', ''
  ].join('\r\n'))
  const uri = topRoute(routed)
  assert.equal(uri?.user, 'TOKEN')
  assert.equal(uri?.port, 5070)
  assert.equal(uri?.params.has('lr'), true)
  routed.shift('route', splitList)
  assert.equal(topRoute(routed)?.params.get('transport'), 'ws')
  assert.equal(topRoute(parseSip('BYE sip:bob@h SIP/2.0\r\n\r\n')), null)
  assert.equal(topRoute(parseSip('BYE sip:bob@h SIP/2.0\r\nRoute: <not a uri>\r\n\r\n')), null)
})
