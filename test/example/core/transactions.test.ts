import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CoreTransactions } from '../../../example/core/transactions'
import { type SipMessage } from '../../../example/sip/message'
import { parseSip } from '../../../example/sip/parse'

const INVITE = 'INVITE sip:alice@edge SIP/2.0\r\nVia: SIP/2.0/UDP core.example:5080;branch=z9hG4bKinv;rport\r\nCSeq: 5 INVITE\r\nContent-Length: 0\r\n\r\n'
const message = (text: string): SipMessage => parseSip(text)

test('the key: branch, sent-by (5060 by default) and CSeq method; a response has its request\'s key; an ACK has its own', () => {
  const key = CoreTransactions.key(message(INVITE))
  assert.equal(key, 'z9hG4bKinv\ncore.example:5080\nINVITE')
  assert.equal(CoreTransactions.key(message('SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP core.example:5080;branch=z9hG4bKinv;rport=5080;received=1.2.3.4\r\nCSeq: 5 INVITE\r\n\r\n')), key)
  assert.notEqual(CoreTransactions.key(message(INVITE.replace('INVITE sip', 'ACK sip').replace('5 INVITE', '5 ACK'))), key)
  assert.equal(CoreTransactions.key(message(INVITE.replace('core.example:5080', 'core.example'))), 'z9hG4bKinv\ncore.example:5060\nINVITE')
})

test('no key without a Via branch or a CSeq', () => {
  assert.equal(CoreTransactions.key(message(INVITE.replace(';branch=z9hG4bKinv', ''))), null)
  assert.equal(CoreTransactions.key(message(INVITE.replace('CSeq: 5 INVITE\r\n', ''))), null)
  assert.equal(CoreTransactions.key(message(INVITE.replace(/Via: [^\r]*\r\n/, ''))), null)
})

test('a request seen again within 64×T1 is a retransmission, with the last answer sent for it', () => {
  let now = 0
  const transactions = new CoreTransactions(100, () => now)
  const key = CoreTransactions.key(message(INVITE)) ?? assert.fail()
  assert.equal(transactions.begin(key), true)
  assert.deepEqual(transactions.begin(key), { response: null }, 'no answer yet: dropped')
  transactions.answered(key, Buffer.from('SIP/2.0 100 Trying\r\n\r\n'))
  transactions.answered(key, Buffer.from('SIP/2.0 486 Busy Here\r\n\r\n'))
  assert.deepEqual(transactions.begin(key), { response: Buffer.from('SIP/2.0 486 Busy Here\r\n\r\n') })
  now = 32_000
  assert.equal(transactions.begin(key), true, 'past its lifetime it is a new request')
  transactions.answered('not seen', Buffer.from('x'))
  assert.equal(transactions.size, 1, 'an answer to an unknown request is not kept')
})

test('expired entries go, and at most maxEntries are kept, the oldest dropped first', () => {
  let now = 0
  const transactions = new CoreTransactions(3, () => now)
  for (const branch of ['a', 'b', 'c']) transactions.begin(branch)
  transactions.begin('d')
  assert.equal(transactions.size, 3)
  assert.equal(transactions.begin('a'), true, 'a was dropped to make room')
  now = 40_000
  transactions.begin('e')
  assert.equal(transactions.size, 1, 'the expired ones went')
})
