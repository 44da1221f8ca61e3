import assert from 'node:assert/strict'
import { test } from 'node:test'
import { splitList } from '../../../example/sip/headers'
import { parseSip } from '../../../example/sip/message'
import { parseNameAddr, parseUri, topRoute } from '../../../example/sip/uri'

test('parseUri: user, password, host, port, params, headers; IPv6; other schemes', () => {
  const uri = parseUri('sip:alice:secret@Example.COM:5060;transport=ws;lr?subject=hi')
  assert.deepEqual(uri, { scheme: 'sip', user: 'alice', password: 'secret', host: 'Example.COM', port: 5060, params: new Map([['transport', 'ws'], ['lr', null]]), headers: 'subject=hi' })
  assert.deepEqual(parseUri('sips:[2001:db8::1]:443')?.host, '[2001:db8::1]')
  assert.equal(parseUri('sip:127.0.0.1;transport=ws')?.user, null)
  assert.equal(parseUri('tel:+1-201-555-0123')?.scheme, 'tel')
  for (const bad of ['', 'alice', 'sip:', 'sip:@x', 'sip:a@', 'sip:a@x:99999', 'sip:a@x:port', 'sip:a b@x', 'sip:a@2001:db8::1']) {
    assert.equal(parseUri(bad), null, bad)
  }
})

test('parseNameAddr: quoted and bare display names, addr-spec whose params are header params', () => {
  assert.deepEqual(parseNameAddr('"Alice \\"A\\"" <sip:alice@x;transport=ws>;tag=9'), { display: 'Alice "A"', uri: 'sip:alice@x;transport=ws', params: new Map([['tag', '9']]) })
  assert.deepEqual(parseNameAddr('Bob <sip:bob@y>'), { display: 'Bob', uri: 'sip:bob@y', params: new Map() })
  assert.deepEqual(parseNameAddr('sip:carol@z;tag=1;expires=60'), { display: null, uri: 'sip:carol@z', params: new Map([['tag', '1'], ['expires', '60']]) })
  assert.deepEqual(parseNameAddr('<sip:d@w>;+sip.instance="<urn:uuid:1;2>";reg-id=1')?.params.get('+sip.instance'), '"<urn:uuid:1;2>"')
  for (const bad of ['', '<sip:a@x', '<>', '"unterminated <sip:a@x>', '<sip:a@x> junk', 'sip:a b@x']) {
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
