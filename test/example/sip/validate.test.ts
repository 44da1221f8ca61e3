import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SipRequest } from '../../../example/sip/message'
import { parseSip } from '../../../example/sip/parse'
import { checkRequest, checkResponse, decrementMaxForwards, startsDialog } from '../../../example/sip/validate'

const HEADERS: Record<string, string> = {
  Via: 'SIP/2.0/WS a.invalid;branch=z9hG4bK1',
  From: '<sip:alice@x>;tag=1',
  To: '<sip:bob@x>',
  'Call-ID': 'c1',
  CSeq: '1 MESSAGE'
}

function request (method: string, headers: Record<string, string | undefined> = {}): SipRequest {
  let text = `${method} sip:bob@x SIP/2.0\r\n`
  for (const [name, value] of Object.entries({ ...HEADERS, CSeq: `1 ${method}`, ...headers })) if (value !== undefined) text += `${name}: ${value}\r\n`
  const message = parseSip(text + '\r\n')
  assert.ok(message instanceof SipRequest)
  return message
}

const problem = (message: SipRequest): string | null => checkRequest(message)?.problem ?? null

test('checkRequest: a request with the mandatory headers passes; each one missing or bad is named', () => {
  assert.equal(checkRequest(request('MESSAGE')), null)
  for (const name of ['Via', 'From', 'To', 'Call-ID', 'CSeq']) assert.equal(problem(request('MESSAGE', { [name]: undefined })), `missing ${name}`)
  assert.equal(problem(request('MESSAGE', { Via: 'SIP/2.0/WS' })), 'bad Via')
  assert.equal(problem(request('MESSAGE', { From: '<sip:alice@x' })), 'bad From')
  assert.equal(problem(request('MESSAGE', { To: 'sip:b b@x' })), 'bad To')
  assert.equal(problem(request('MESSAGE', { 'Call-ID': 'a b' })), 'bad Call-ID')
  assert.equal(problem(request('MESSAGE', { CSeq: 'one MESSAGE' })), 'bad CSeq')
  assert.equal(problem(request('MESSAGE', { CSeq: '4294967296 MESSAGE' })), 'bad CSeq')
  assert.equal(problem(request('MESSAGE', { CSeq: '1 INVITE' })), 'CSeq method does not match the request')
  assert.equal(problem(request('MESSAGE', { 'Max-Forwards': 'x' })), 'bad Max-Forwards')
  assert.equal(problem(request('MESSAGE', { 'Max-Forwards': '256' })), 'bad Max-Forwards')
  assert.equal(checkRequest(request('MESSAGE', { 'Max-Forwards': '255' })), null)
  assert.equal(checkRequest(request('MESSAGE', { 'Max-Forwards': '0068' })), null, 'leading zeros (RFC 4475 §3.1.1.1)')
  assert.equal(problem(request('MESSAGE', { Contact: '"Joe" <sip:joe@example.org>;;;;' })), 'bad Contact')
  assert.equal(problem(request('MESSAGE', { Date: 'Fri, 01 Jan 2010 16:00:00 EST' })), 'bad Date')
  assert.equal(checkRequest(request('MESSAGE', { Date: 'Sat, 15 Oct 2005 04:44:56 GMT' })), null)
  assert.equal(problem(request('MESSAGE', { Route: 'sip:p.example;lr' })), 'bad Route', 'a Route is a name-addr, in brackets')
  assert.equal(problem(request('MESSAGE', { Expires: 'soon' })), 'bad Expires')
})

test('checkRequest: single-valued headers twice, 416 for a scheme it cannot route, 420 for Proxy-Require', () => {
  const twice = parseSip('MESSAGE sip:bob@x SIP/2.0\r\nVia: SIP/2.0/WS a.invalid\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nTo: <sip:c@x>\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\n\r\n')
  assert.ok(twice instanceof SipRequest)
  assert.equal(problem(twice), 'more than one To')
  const tel = request('MESSAGE')
  tel.uri = 'tel:+15551234'
  assert.deepEqual(checkRequest(tel), { status: 416, reason: 'Unsupported URI Scheme', problem: 'tel: Request-URI' })
  tel.uri = '<sip:bob@x>'
  assert.equal(checkRequest(tel)?.status, 400)
  tel.uri = 'sip:bob@x?Route=%3Csip:example.com%3E'
  assert.equal(problem(tel), 'headers in the Request-URI')
  const extension = checkRequest(request('OPTIONS', { 'Proxy-Require': 'foo, bar' }))
  assert.equal(extension?.status, 420)
  assert.deepEqual(extension?.extra, [['Unsupported', 'foo, bar']])
})

test('checkResponse: the headers a proxy reads must be right', () => {
  const ok = parseSip('SIP/2.0 200 OK\r\nVia: SIP/2.0/WS a.invalid;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\n\r\n')
  assert.ok(ok.kind === 'response')
  assert.equal(checkResponse(ok), null)
  ok.set('CSeq', '9292394834772304023312 OPTIONS')
  assert.equal(checkResponse(ok), 'bad CSeq')
})

test('decrementMaxForwards: one less, 70 when absent, false at 0', () => {
  const some = request('MESSAGE', { 'Max-Forwards': '3' })
  assert.equal(decrementMaxForwards(some), true)
  assert.equal(some.get('max-forwards'), '2')
  const none = request('MESSAGE')
  assert.equal(decrementMaxForwards(none), true)
  assert.equal(none.get('max-forwards'), '70')
  const zero = request('MESSAGE', { 'Max-Forwards': '0' })
  assert.equal(decrementMaxForwards(zero), false)
  assert.equal(zero.get('max-forwards'), '0', 'left as it was, for the 483')
})

test('startsDialog: INVITE, SUBSCRIBE and REFER without a To tag', () => {
  for (const method of ['INVITE', 'SUBSCRIBE', 'REFER']) {
    assert.equal(startsDialog(request(method)), true, method)
    assert.equal(startsDialog(request(method, { To: '<sip:bob@x>;tag=9' })), false, `${method} in a dialog`)
  }
  assert.equal(startsDialog(request('MESSAGE')), false)
  assert.equal(startsDialog(request('OPTIONS')), false)
})
