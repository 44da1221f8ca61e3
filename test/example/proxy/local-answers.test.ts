import assert from 'node:assert/strict'
import { test } from 'node:test'
import { LocalAnswers } from '../../../example/proxy/local-answers'
import { SipRequest } from '../../../example/sip/message'
import { parseSip } from '../../../example/sip/parse'

const request = (method: string, via: string): SipRequest => {
  const message = parseSip(`${method} sip:bob@x SIP/2.0\r\nVia: ${via}\r\nCSeq: 1 ${method}\r\nl: 0\r\n\r\n`)
  assert.ok(message instanceof SipRequest)
  return message
}

test('the ACK for an INVITE answered here matches it: same source, branch and sent-by; for 64×T1', () => {
  let now = 0
  const answers = new LocalAnswers(10, () => now)
  const via = 'SIP/2.0/WS a.invalid;branch=z9hG4bK1'
  answers.answered(LocalAnswers.key('7', request('INVITE', via)))
  assert.equal(answers.has(LocalAnswers.key('7', request('ACK', via))), true)
  assert.equal(answers.has(LocalAnswers.key('8', request('ACK', via))), false, 'another connection')
  assert.equal(answers.has(LocalAnswers.key('7', request('ACK', 'SIP/2.0/WS a.invalid;branch=z9hG4bK2'))), false, 'another branch')
  assert.equal(answers.has(LocalAnswers.key('7', request('ACK', 'SIP/2.0/WS b.invalid;branch=z9hG4bK1'))), false, 'another sent-by')
  now = 32_000
  assert.equal(answers.has(LocalAnswers.key('7', request('ACK', via))), false, 'past Timer H')
})

test('no branch: nothing to match; at most maxEntries are kept, the oldest going first', () => {
  const answers = new LocalAnswers(2, () => 0)
  assert.equal(LocalAnswers.key('1', request('INVITE', 'SIP/2.0/UDP iftgw.example.com')), null)
  answers.answered(null)
  for (const branch of ['a', 'b', 'c']) answers.answered(LocalAnswers.key('1', request('INVITE', `SIP/2.0/WS x;branch=${branch}`)))
  assert.equal(answers.has(LocalAnswers.key('1', request('ACK', 'SIP/2.0/WS x;branch=a'))), false)
  assert.equal(answers.has(LocalAnswers.key('1', request('ACK', 'SIP/2.0/WS x;branch=c'))), true)
})
