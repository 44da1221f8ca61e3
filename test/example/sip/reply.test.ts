import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SipRequest, SipResponse } from '../../../example/sip/message'
import { parseSip } from '../../../example/sip/parse'
import { localResponse } from '../../../example/sip/reply'
import { parseNameAddr } from '../../../example/sip/uri'

const INVITE = [
  'INVITE sip:bob@edge.example SIP/2.0',
  'Via: SIP/2.0/WS a.invalid;branch=z9hG4bK1, SIP/2.0/UDP p.example;branch=z9hG4bK0',
  'v: SIP/2.0/UDP q.example;branch=z9hG4bKq',
  'Max-Forwards: 70',
  'From: "Alice" <sip:alice@edge.example>;tag=a1',
  't: <sip:bob@edge.example>',
  'i: call-1@a.invalid',
  'CSeq: 7 INVITE',
  'Contact: <sip:alice@a.invalid;transport=ws>',
  'Content-Type: application/sdp',
  'Content-Length: 4',
  '',
  'v=0\n'
].join('\r\n')

function invite (): SipRequest {
  const message = parseSip(INVITE)
  assert.ok(message instanceof SipRequest)
  return message
}

test('a local response copies every Via line, From, To, Call-ID and CSeq byte for byte, then the extra headers and Server, and no body', () => {
  const response = localResponse(invite(), 486, 'Busy Here', 'test server', [['Warning', '399 - "busy"'], ['Retry-After', '30']])
  const again = parseSip(response.toString())
  assert.ok(again instanceof SipResponse)
  assert.equal(again.status, 486)
  assert.equal(again.reason, 'Busy Here')
  assert.deepEqual(again.getAll('via'), ['SIP/2.0/WS a.invalid;branch=z9hG4bK1, SIP/2.0/UDP p.example;branch=z9hG4bK0', 'SIP/2.0/UDP q.example;branch=z9hG4bKq'])
  assert.deepEqual(again.headers.map((h) => h.name), ['Via', 'v', 'From', 't', 'i', 'CSeq', 'Warning', 'Retry-After', 'Server', 'Content-Length'])
  assert.equal(again.get('from'), '"Alice" <sip:alice@edge.example>;tag=a1')
  assert.equal(again.get('call-id'), 'call-1@a.invalid')
  assert.equal(again.get('cseq'), '7 INVITE')
  assert.equal(again.get('server'), 'test server')
  assert.equal(again.has('contact'), false)
  assert.equal(again.body.length, 0)
})

test('a final error names why in a Warning, unless one is given', () => {
  assert.equal(localResponse(invite(), 404, 'Not Found', 's', [], 'nobody "here"').get('warning'), '399 - "nobody  here "')
  assert.equal(localResponse(invite(), 480, 'Temporarily Unavailable', 's', [['Warning', '399 - "given"']], 'why').get('warning'), '399 - "given"')
  assert.equal(localResponse(invite(), 200, 'OK', 's', [], 'why').has('warning'), false)
})

test('a To tag is added to any response but 100 Trying, and a tag already there is kept', () => {
  const tagOf = (response: SipResponse): string | null | undefined => parseNameAddr(response.get('to') ?? '')?.params.get('tag')
  assert.match(tagOf(localResponse(invite(), 404, 'Not Found', 's')) ?? '', /^[0-9a-f]{10}$/)
  assert.equal(tagOf(localResponse(invite(), 100, 'Trying', 's')), undefined)
  const tagged = invite()
  tagged.set('To', '<sip:bob@edge.example>;tag=b2')
  assert.equal(tagOf(localResponse(tagged, 200, 'OK', 's')), 'b2')
})
