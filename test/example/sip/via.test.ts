import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SipRequest } from '../../../example/sip/message'
import { parseSip } from '../../../example/sip/parse'
import { allVias, markReceived, parseVia, topVia, viaTarget } from '../../../example/sip/via'

const request = (...lines: string[]): SipRequest => {
  const message = parseSip([...lines, '', ''].join('\r\n'))
  assert.ok(message instanceof SipRequest)
  return message
}

test('parseVia', () => {
  assert.deepEqual(parseVia('SIP / 2.0 / ws 10.0.0.1:8080 ;branch=z9hG4bK1;rport'), { protocol: 'SIP/2.0/WS', host: '10.0.0.1', port: 8080, params: new Map([['branch', 'z9hG4bK1'], ['rport', null]]) })
  assert.equal(parseVia('SIP/2.0/WS'), null)
  assert.equal(parseVia('HTTP/1.1 x'), null)
  assert.equal(parseVia('SIP/2.0/UDP 192.0.2.15;;'), null, 'an empty parameter (RFC 4475 §3.1.2.1)')
  assert.deepEqual(parseVia('SIP  /   2.0 /UDP    192.0.2.2;branch=390skdjuw')?.protocol, 'SIP/2.0/UDP', 'white space around the slashes (RFC 4475 §3.1.1.1)')
  assert.equal(parseVia('SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3')?.params.get('received'), '2001:db8::9:255', 'received without brackets (RFC 5118 §4.5)')
  assert.equal(parseVia('SIP/2.0/UDP [2001:db8::9:1]:6050;received=[2001:db8::9:255]')?.port, 6050)
})

test('allVias: every value of every line; null for a malformed or empty one', () => {
  assert.equal(allVias(request('MESSAGE sip:b@x SIP/2.0', 'Via: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b', 'v: SIP/2.0/TCP c'))?.length, 3)
  assert.equal(allVias(request('MESSAGE sip:b@x SIP/2.0', 'Via: SIP/2.0/UDP 192.0.2.15;;,;,,')), null)
  assert.equal(allVias(request('MESSAGE sip:b@x SIP/2.0', 'Via: SIP/2.0/UDP a, , SIP/2.0/UDP b')), null)
})

test('topVia: the first value of the first Via line, compact form included; null when missing or malformed', () => {
  const stacked = request(
    'MESSAGE sip:b@x SIP/2.0',
    'v: SIP/2.0/WS p1.example;branch=z9hG4bKa, SIP/2.0/UDP p2.example;branch=z9hG4bKb',
    'Via: SIP/2.0/TCP p3.example;branch=z9hG4bKc'
  )
  assert.equal(topVia(stacked)?.host, 'p1.example')
  assert.equal(topVia(stacked)?.params.get('branch'), 'z9hG4bKa')
  assert.equal(topVia(request('MESSAGE sip:b@x SIP/2.0', 'To: <sip:b@x>')), null)
  assert.equal(topVia(request('MESSAGE sip:b@x SIP/2.0', 'Via: garbage, SIP/2.0/UDP ok.example')), null, 'a bad top Via is not skipped')
})

test('markReceived: received when the sender is not the sent-by, rport filled when asked for, only the first value changes', () => {
  const udp = request(
    'OPTIONS sip:edge SIP/2.0',
    'Via: SIP/2.0/UDP core.example:5060;branch=z9hG4bK1;rport, SIP/2.0/UDP far.example;branch=z9hG4bK0',
    'Via: SIP/2.0/UDP farther.example;branch=z9hG4bKz'
  )
  markReceived(udp, { transport: 'udp', address: '192.0.2.7', port: 5099 })
  assert.deepEqual(udp.getAll('via'), [
    'SIP/2.0/UDP core.example:5060;branch=z9hG4bK1;rport=5099;received=192.0.2.7, SIP/2.0/UDP far.example;branch=z9hG4bK0',
    'SIP/2.0/UDP farther.example;branch=z9hG4bKz'
  ])
  const same = request('OPTIONS sip:edge SIP/2.0', 'Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK2')
  markReceived(same, { transport: 'udp', address: '127.0.0.1', port: 5060 })
  assert.equal(same.get('via'), 'SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK2', 'from its sent-by, without rport: untouched')
})

test('markReceived over TCP always fills rport (force_rport), replacing a value already there', () => {
  const tcp = request('OPTIONS sip:edge SIP/2.0', 'Via: SIP/2.0/TCP [::1]:5060;rport=1;branch=z9hG4bK3')
  markReceived(tcp, { transport: 'tcp', address: '::1', port: 40000 })
  assert.equal(tcp.get('via'), 'SIP/2.0/TCP [::1]:5060;rport=40000;branch=z9hG4bK3')
  const none = request('OPTIONS sip:edge SIP/2.0', 'To: <sip:edge>')
  markReceived(none, { transport: 'tcp', address: '::1', port: 40000 })
  assert.equal(none.has('via'), false, 'no Via: nothing added')
})

test('viaTarget: received and rport win over the sent-by; 5060 by default; TCP for a TCP Via', () => {
  const target = (value: string): ReturnType<typeof viaTarget> => viaTarget(parseVia(value) ?? assert.fail(value))
  assert.deepEqual(target('SIP/2.0/UDP core.example;branch=z9hG4bK1'), { transport: 'udp', address: 'core.example', port: 5060 })
  assert.deepEqual(target('SIP/2.0/UDP core.example:5080;received=192.0.2.1;rport=6000'), { transport: 'udp', address: '192.0.2.1', port: 6000 })
  assert.deepEqual(target('SIP/2.0/TCP [::1]:5070;rport'), { transport: 'tcp', address: '::1', port: 5070 })
  assert.deepEqual(target('SIP/2.0/UDP 10.0.0.1;received=[2001:db8::2]'), { transport: 'udp', address: '2001:db8::2', port: 5060 })
})
