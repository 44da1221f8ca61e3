import assert from 'node:assert/strict'
import { test } from 'node:test'
import { parseSip, SipRequest } from '../../../example/sip/message'
import { decrementMaxForwards, startsDialog, validate } from '../../../example/sip/validate'

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

test('validate: a request with the mandatory headers passes; each one missing or bad is named', () => {
  assert.equal(validate(request('MESSAGE')), null)
  for (const name of ['Via', 'From', 'To', 'Call-ID', 'CSeq']) assert.equal(validate(request('MESSAGE', { [name]: undefined })), `missing ${name}`)
  assert.equal(validate(request('MESSAGE', { Via: 'SIP/2.0/WS' })), 'bad Via')
  assert.equal(validate(request('MESSAGE', { From: '<sip:alice@x' })), 'bad From')
  assert.equal(validate(request('MESSAGE', { To: 'sip:b b@x' })), 'bad To')
  assert.equal(validate(request('MESSAGE', { CSeq: 'one MESSAGE' })), 'bad CSeq')
  assert.equal(validate(request('MESSAGE', { CSeq: '1 INVITE' })), 'CSeq method does not match the request')
  assert.equal(validate(request('MESSAGE', { 'Max-Forwards': 'x' })), 'bad Max-Forwards')
  assert.equal(validate(request('MESSAGE', { 'Max-Forwards': '256' })), 'bad Max-Forwards')
  assert.equal(validate(request('MESSAGE', { 'Max-Forwards': '255' })), null)
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
