import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { splitList } from '../../../example/sip/headers'
import { headerKey, SipRequest, SipResponse } from '../../../example/sip/message'
import { parseSip } from '../../../example/sip/parse'
import { parseVia } from '../../../example/sip/via'

const crlf = (...lines: string[]): string => lines.join('\r\n')

const INVITE = crlf(
  'INVITE sip:bob@example.com SIP/2.0',
  'Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKnashds7',
  'Max-Forwards: 70',
  'To: Bob <sip:bob@example.com>',
  'From: "Alice" <sip:alice@example.com>;tag=1928301774',
  'Call-ID: a84b4c76e66710',
  'CSeq: 314159 INVITE',
  'Contact: <sip:alice@df7jal23ls0d.invalid;transport=ws>',
  'Content-Type: application/sdp',
  'Content-Length: 4',
  '',
  'v=0\n'
)

describe('SIP messages', () => {
  test('a request: method, Request-URI, headers in order, body by Content-Length', () => {
    const msg = parseSip(INVITE)
    assert.ok(msg instanceof SipRequest)
    assert.equal(msg.method, 'INVITE')
    assert.equal(msg.uri, 'sip:bob@example.com')
    assert.deepEqual(msg.headers.map((h) => h.name), ['Via', 'Max-Forwards', 'To', 'From', 'Call-ID', 'CSeq', 'Contact', 'Content-Type', 'Content-Length'])
    assert.equal(msg.get('call-id'), 'a84b4c76e66710')
    assert.equal(msg.get('CSEQ'), '314159 INVITE')
    assert.equal(msg.body.toString(), 'v=0\n')
  })

  test('a response: status, reason phrase with spaces, empty reason', () => {
    const msg = parseSip(crlf('SIP/2.0 180 Ringing Now', 'Via: SIP/2.0/WS a.invalid;branch=z9hG4bK1', '', ''))
    assert.ok(msg instanceof SipResponse)
    assert.equal(msg.status, 180)
    assert.equal(msg.reason, 'Ringing Now')
    const bare = parseSip(crlf('SIP/2.0 200', 'Content-Length: 0', '', ''))
    assert.ok(bare instanceof SipResponse)
    assert.equal(bare.reason, '')
  })

  test('compact header forms are found under their long names, and keep their spelling', () => {
    const msg = parseSip(crlf(
      'MESSAGE sip:bob@example.com SIP/2.0',
      'v: SIP/2.0/WS a.invalid;branch=z9hG4bK1',
      'f: <sip:alice@example.com>;tag=1',
      't: <sip:bob@example.com>',
      'i: abc@a.invalid',
      'CSeq: 1 MESSAGE',
      'm: <sip:alice@a.invalid;transport=ws>',
      'c: text/plain',
      'l: 5',
      '',
      'hello'
    ))
    assert.equal(msg.get('Via'), 'SIP/2.0/WS a.invalid;branch=z9hG4bK1')
    assert.equal(msg.get('from'), '<sip:alice@example.com>;tag=1')
    assert.equal(msg.get('To'), '<sip:bob@example.com>')
    assert.equal(msg.get('Call-ID'), 'abc@a.invalid')
    assert.equal(msg.get('Contact'), '<sip:alice@a.invalid;transport=ws>')
    assert.equal(msg.get('content-type'), 'text/plain')
    assert.equal(msg.get('content-length'), '5')
    assert.equal(msg.body.toString(), 'hello')
    assert.equal(headerKey('V'), 'via')
    assert.ok(msg.toString().includes('\r\nv: SIP/2.0/WS a.invalid;branch=z9hG4bK1\r\n'))
    assert.ok(msg.toString().includes('\r\nl: 5\r\n'))
  })

  test('several Via values, on several lines and comma-separated on one', () => {
    const msg = parseSip(crlf(
      'SIP/2.0 200 OK',
      'Via: SIP/2.0/WS p1.example.com;branch=z9hG4bKa;cid=7, SIP/2.0/WS p2.example.com;branch=z9hG4bKb',
      'v: SIP/2.0/WSS c.invalid;branch=z9hG4bKc;received=192.0.2.1',
      'CSeq: 1 MESSAGE',
      '', ''
    ))
    assert.equal(msg.getAll('via').length, 2)
    assert.deepEqual(msg.getAll('via').flatMap(splitList).map((v) => parseVia(v)?.params.get('branch')), ['z9hG4bKa', 'z9hG4bKb', 'z9hG4bKc'])
    assert.equal(msg.shift('via', splitList), 'SIP/2.0/WS p1.example.com;branch=z9hG4bKa;cid=7')
    assert.deepEqual(msg.getAll('via'), ['SIP/2.0/WS p2.example.com;branch=z9hG4bKb', 'SIP/2.0/WSS c.invalid;branch=z9hG4bKc;received=192.0.2.1'])
    msg.shift('via', splitList)
    assert.equal(msg.headers[0].name, 'v', 'the second line is untouched')
    msg.shift('via', splitList)
    assert.equal(msg.has('via'), false)
    assert.equal(msg.shift('via', splitList), undefined)
  })

  test('Content-Length counts bytes, not characters; extra bytes are cut; no Content-Length takes the rest', () => {
    const body = 'héllo ☃'
    const exact = parseSip(crlf('MESSAGE sip:b@x SIP/2.0', `Content-Length: ${Buffer.byteLength(body)}`, '', body))
    assert.equal(exact.body.toString(), body)
    const cut = parseSip(crlf('MESSAGE sip:b@x SIP/2.0', 'Content-Length: 6', '', body))
    assert.equal(cut.body.toString(), 'héllo')
    const none = parseSip(crlf('MESSAGE sip:b@x SIP/2.0', 'To: <sip:b@x>', '', 'all\r\nof it'))
    assert.equal(none.body.toString(), 'all\r\nof it')
    const zero = parseSip(crlf('MESSAGE sip:b@x SIP/2.0', 'Content-Length: 0', '', 'ignored'))
    assert.equal(zero.body.length, 0)
  })

  test('a Buffer is read as bytes; bare LF line ends and leading CRLFs are accepted', () => {
    const msg = parseSip(Buffer.from('\r\n\r\nOPTIONS sip:x.example SIP/2.0\nCSeq: 1 OPTIONS\n\n'))
    assert.ok(msg instanceof SipRequest)
    assert.equal(msg.get('cseq'), '1 OPTIONS')
  })

  test('folded header lines are joined with one space, and written back as they came', () => {
    const text = crlf('MESSAGE sip:b@x SIP/2.0', 'Subject: I know you are there,', '   pick up the phone', 'l: 0', '', '')
    const msg = parseSip(text)
    assert.equal(msg.get('s'), 'I know you are there, pick up the phone')
    assert.equal(msg.toString(), text)
  })

  test('round trip: serialize(parse(x)) is x, and parse(serialize(m)) is m', () => {
    assert.equal(parseSip(INVITE).toString(), INVITE)
    const built = new SipRequest('MESSAGE', 'sip:bob@example.com', [
      { name: 'Via', value: 'SIP/2.0/WS a.invalid;branch=z9hG4bK1' },
      { name: 'To', value: '<sip:bob@example.com>' }
    ], 'ünïcode')
    const text = built.toString()
    assert.ok(text.endsWith(`Content-Length: ${Buffer.byteLength('ünïcode')}\r\n\r\nünïcode`), 'Content-Length is added, in bytes')
    const again = parseSip(text)
    assert.ok(again instanceof SipRequest)
    assert.equal(again.method, built.method)
    assert.equal(again.uri, built.uri)
    assert.deepEqual(again.body, built.body)
    assert.deepEqual(again.headers.slice(0, 2).map(({ name, value }) => ({ name, value })), built.headers)
    const response = new SipResponse(404, 'Not Found', [{ name: 'CSeq', value: '2 MESSAGE' }])
    assert.equal(response.toString(), 'SIP/2.0 404 Not Found\r\nCSeq: 2 MESSAGE\r\nContent-Length: 0\r\n\r\n')
  })

  test('a header changed is written from its name and value; the others as they came', () => {
    const msg = parseSip(crlf('MESSAGE sip:b@x SIP/2.0', 'MaX-fOrWaRdS:  0068', 'To :', ' <sip:b@x>', 'l: 0', '', ''))
    msg.set('max-forwards', '67')
    assert.equal(msg.toString(), crlf('MESSAGE sip:b@x SIP/2.0', 'MaX-fOrWaRdS: 67', 'To :', ' <sip:b@x>', 'l: 0', '', ''))
  })

  test('serializing fixes a wrong Content-Length in place and drops duplicates', () => {
    const msg = parseSip(crlf('MESSAGE sip:b@x SIP/2.0', 'l: 2', 'To: <sip:b@x>', '', 'hi'))
    msg.body = Buffer.from('hello')
    msg.headers.push({ name: 'Content-Length', value: '99' })
    assert.equal(msg.toString(), crlf('MESSAGE sip:b@x SIP/2.0', 'l: 5', 'To: <sip:b@x>', '', 'hello'))
  })

  test('set replaces the first line in place and removes the others; prepend and remove', () => {
    const msg = parseSip(crlf('MESSAGE sip:b@x SIP/2.0', 'Max-Forwards: 70', 'To: <sip:b@x>', 'Max-Forwards: 3', '', ''))
    msg.set('max-forwards', '69')
    assert.deepEqual(msg.headers, [{ name: 'Max-Forwards', value: '69' }, { name: 'To', value: '<sip:b@x>', raw: 'To: <sip:b@x>' }])
    msg.prepend('Via', 'SIP/2.0/WS p.example;branch=z9hG4bK2')
    assert.equal(msg.headers[0].name, 'Via')
    msg.remove('t')
    assert.equal(msg.has('to'), false)
    msg.set('Expires', '0')
    assert.equal(msg.headers.at(-1)?.name, 'Expires')
  })

  test('pop takes the last value of the last line (the strict-route fix-up)', () => {
    const msg = parseSip(crlf('BYE sip:b@x SIP/2.0', 'Route: <sip:a>, <sip:b>', 'Route: <sip:c>, <sip:d>', '', ''))
    assert.equal(msg.pop('route', splitList), '<sip:d>')
    assert.deepEqual(msg.getAll('route'), ['<sip:a>, <sip:b>', '<sip:c>'])
    msg.pop('route', splitList)
    assert.deepEqual(msg.getAll('route'), ['<sip:a>, <sip:b>'])
  })

  test('payload: text when the message is UTF-8, bytes when its body is binary (RFC 7118 §5.1)', () => {
    const text = parseSip(crlf('MESSAGE sip:b@x SIP/2.0', 'l: 5', '', 'héllo'.slice(0, 4)))
    assert.equal(typeof text.payload(), 'string')
    const binary = new SipRequest('MESSAGE', 'sip:b@x', [], Buffer.from([0x30, 0x82, 0xff]))
    const payload = binary.payload()
    assert.ok(Buffer.isBuffer(payload))
    assert.deepEqual(parseSip(payload).body, Buffer.from([0x30, 0x82, 0xff]))
  })
})
