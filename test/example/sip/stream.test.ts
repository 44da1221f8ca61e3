import assert from 'node:assert/strict'
import { test } from 'node:test'
import { parseSip } from '../../../example/sip/parse'
import { MAX_STREAM_MESSAGE, SipStreamReader, type StreamItem } from '../../../example/sip/stream'

const OPTIONS = 'OPTIONS sip:edge.example SIP/2.0\r\nVia: SIP/2.0/TCP core.example;branch=z9hG4bK1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n'
const MESSAGE = 'MESSAGE sip:bob@edge.example SIP/2.0\r\nVia: SIP/2.0/TCP core.example;branch=z9hG4bK2\r\nCSeq: 2 MESSAGE\r\nl: 5\r\n\r\nhello'

const kinds = (items: StreamItem[]): string[] => items.map((item) => item.kind === 'message' ? `message ${item.data.toString().split(' ')[0]}` : item.kind === 'error' ? `error ${item.problem}` : 'ping')

test('messages are cut by Content-Length (the compact form too), whatever the chunks', () => {
  const whole = Buffer.from(OPTIONS + MESSAGE + OPTIONS)
  const reader = new SipStreamReader()
  const items: StreamItem[] = []
  // One byte at a time: every cut a TCP stream can make.
  for (let i = 0; i < whole.length; i++) items.push(...reader.push(whole.subarray(i, i + 1)))
  assert.deepEqual(kinds(items), ['message OPTIONS', 'message MESSAGE', 'message OPTIONS'])
  const message = items[1]
  assert.ok(message.kind === 'message')
  assert.equal(parseSip(message.data).body.toString(), 'hello')
  assert.deepEqual(kinds(new SipStreamReader().push(whole)), ['message OPTIONS', 'message MESSAGE', 'message OPTIONS'], 'and all in one chunk')
})

test('a double CRLF between messages is a keepalive ping; a lone CRLF (the pong) is skipped', () => {
  const reader = new SipStreamReader()
  assert.deepEqual(kinds(reader.push(Buffer.from('\r\n'))), [], 'a CRLF alone at the end waits: it may be half of a ping')
  assert.deepEqual(kinds(reader.push(Buffer.from('\r\n'))), ['ping'])
  assert.deepEqual(kinds(reader.push(Buffer.from(OPTIONS))), ['message OPTIONS'])
  assert.deepEqual(kinds(reader.push(Buffer.from('\r\n' + OPTIONS))), ['message OPTIONS'])
  assert.deepEqual(kinds(reader.push(Buffer.from('\r\n\r\n\r\n\r\n' + MESSAGE))), ['ping', 'ping', 'message MESSAGE'])
})

test('no Content-Length on a stream is an error: the rest cannot be framed', () => {
  const items = new SipStreamReader().push(Buffer.from('OPTIONS sip:e SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n' + OPTIONS))
  assert.deepEqual(kinds(items), ['error no Content-Length on a stream'])
})

test('a folded Content-Length frames the message as the parser reads it; two of them are an error', () => {
  const folded = 'MESSAGE sip:b@e SIP/2.0\r\nContent-Length:\r\n 5\r\n\r\nhello'
  assert.deepEqual(kinds(new SipStreamReader().push(Buffer.from(folded + OPTIONS))), ['message MESSAGE', 'message OPTIONS'])
  const two = 'MESSAGE sip:b@e SIP/2.0\r\nl: 0\r\nContent-Length: 5\r\n\r\nhello'
  assert.deepEqual(kinds(new SipStreamReader().push(Buffer.from(two))), ['error more than one Content-Length'])
})

test('a message or a head longer than MAX_STREAM_MESSAGE is an error, not a buffer that grows', () => {
  const long = `MESSAGE sip:b@e SIP/2.0\r\nContent-Length: ${MAX_STREAM_MESSAGE}\r\n\r\n`
  assert.deepEqual(kinds(new SipStreamReader().push(Buffer.from(long))), ['error message too long'])
  const reader = new SipStreamReader()
  assert.deepEqual(kinds(reader.push(Buffer.from('MESSAGE sip:b@e SIP/2.0\r\nSubject: '))), [])
  assert.deepEqual(kinds(reader.push(Buffer.alloc(MAX_STREAM_MESSAGE, 'x'))), ['error headers too long'])
})
