import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { SipRequest, SipResponse } from '../../../example/sip/message'
import { contentLength, headerFields, parseSip, SipParseError } from '../../../example/sip/parse'
import { checkRequest, checkResponse, decrementMaxForwards } from '../../../example/sip/validate'
import { RFC4475 } from '../../fixtures/sip-torture/rfc4475'
import { RFC5118 } from '../../fixtures/sip-torture/rfc5118'
import { tortureBytes, type TortureMessage } from '../../helpers/torture'

/**
 * What the parser and the checks make of a message: `forward` (it may go on), or the status a request
 * gets, or `drop` for a response that cannot be read.
 */
function verdict (bytes: Buffer): 'forward' | 'drop' | number {
  let message
  try {
    message = parseSip(bytes)
  } catch (err) {
    assert.ok(err instanceof SipParseError, String(err))
    return err.head?.kind === 'request' ? err.status : 'drop'
  }
  if (message instanceof SipResponse) return checkResponse(message) === null ? 'forward' : 'drop'
  const refusal = checkRequest(message)
  if (refusal !== null) return refusal.status
  return decrementMaxForwards(message) ? 'forward' : 483
}

/** The bytes a proxy writes for a message it relays unchanged: these, but for what RFC 3261 makes it fix. */
function rewritten (message: TortureMessage, bytes: Buffer): Buffer {
  const text = bytes.toString('latin1')
  if (message.name === 'dblreq') return Buffer.from(text.slice(0, text.indexOf('\r\n\r\n') + 4), 'latin1')
  if (message.name === 'inv2543') return Buffer.from(text.replace('\r\n\r\n', `\r\nContent-Length: ${bytes.length - text.indexOf('\r\n\r\n') - 4}\r\n\r\n`), 'latin1')
  if (message.expect.kind === 'liberal') return Buffer.from(text.replace(/^(\S+) +(\S+) +(SIP\/2\.0) *\r\n/, '$1 $2 $3\r\n'), 'latin1')
  return bytes
}

describe('the torture messages of RFC 4475 and RFC 5118', () => {
  const all = [...RFC4475, ...RFC5118]

  test('every section is there: 49 messages of RFC 4475 §3, 12 of RFC 5118 §4', () => {
    assert.equal(RFC4475.length, 49)
    assert.equal(RFC4475.filter((m) => m.section.startsWith('3.1.1.')).length, 13)
    assert.equal(RFC4475.filter((m) => m.section.startsWith('3.1.2.')).length, 19)
    assert.equal(RFC5118.length, 12)
    assert.equal(new Set(all.map((m) => m.name)).size, all.length)
  })

  for (const message of all) {
    test(`RFC ${message.rfc} §${message.section} ${message.name} (${message.title}): ${JSON.stringify(message.expect)}`, () => {
      const bytes = tortureBytes(message)
      const got = verdict(bytes)
      const { expect } = message
      if (expect.kind === 'forward' || expect.kind === 'liberal') {
        assert.equal(got, 'forward')
        // Read and written again, a message is the same bytes: header order, spelling, folds, compact forms, body.
        assert.deepEqual(parseSip(bytes).toBuffer(), rewritten(message, bytes))
      } else if (expect.kind === 'refuse') {
        assert.equal(got, expect.status)
      } else {
        assert.equal(got, 'drop')
      }
    })
  }
})

describe('parseSip', () => {
  test('wsinv: folds joined, LWS around colons and semicolons, compact and long forms, leading zeros', () => {
    const wsinv = parseSip(tortureBytes(RFC4475[0]))
    assert.ok(wsinv instanceof SipRequest)
    assert.equal(wsinv.get('to'), 'sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n')
    assert.equal(wsinv.get('cseq'), '0009 INVITE')
    assert.equal(wsinv.get('max-forwards'), '0068')
    assert.equal(wsinv.getAll('via').length, 2, 'a Via line and a `v` line')
    assert.equal(wsinv.get('subject'), '')
    assert.equal(wsinv.headers[0].raw, 'TO :\r\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n')
    assert.equal(wsinv.body.length, 150)
  })

  test('a head that is not UTF-8 is read byte for byte and written back the same', () => {
    const bytes = Buffer.concat([Buffer.from('MESSAGE sip:b@x SIP/2.0\r\nSubject: caf'), Buffer.from([0xe9]), Buffer.from('\r\nl: 0\r\n\r\n')])
    const message = parseSip(bytes)
    assert.equal(message.encoding, 'latin1')
    assert.equal(message.get('subject'), 'café')
    assert.deepEqual(message.toBuffer(), bytes)
  })

  test('a bad version: 505 for a request, with the request as read', () => {
    assert.throws(() => parseSip('OPTIONS sip:x SIP/3.0\r\nCSeq: 1 OPTIONS\r\n\r\n'), (err: unknown) => err instanceof SipParseError && err.status === 505 && err.head?.kind === 'request')
    assert.throws(() => parseSip('SIP/3.0 200 OK\r\n\r\n'), (err: unknown) => err instanceof SipParseError && err.head === null)
  })

  test('a framing problem keeps the head that was read, for a 400 its sender can match', () => {
    assert.throws(() => parseSip('MESSAGE sip:b@x SIP/2.0\r\nCall-ID: c1\r\nContent-Length: 10\r\n\r\nabc'), (err: unknown) => err instanceof SipParseError && err.head?.get('call-id') === 'c1' && /Content-Length says 10/.test(err.message))
  })

  const bad: Array<[string, string | Buffer, RegExp]> = [
    ['plain text', 'hello there', /bad start line/],
    ['a start line with no space', 'hello', /bad start line/],
    ['JSON', '{"jsonrpc":"2.0"}\r\n\r\n', /bad start line/],
    ['an HTTP request', 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', /bad start line/],
    ['a status out of range', 'SIP/2.0 700 Weird\r\n\r\n', /bad start line/],
    ['a header without a colon', 'MESSAGE sip:b@x SIP/2.0\r\nVia SIP/2.0/WS a\r\n\r\n', /without a colon/],
    ['a bad header name', 'MESSAGE sip:b@x SIP/2.0\r\nV a: 1\r\n\r\n', /bad header name/],
    ['a continuation first', 'MESSAGE sip:b@x SIP/2.0\r\n folded\r\n\r\n', /continuation/],
    ['a non-numeric Content-Length', 'MESSAGE sip:b@x SIP/2.0\r\nContent-Length: ten\r\n\r\n', /bad Content-Length/],
    ['two Content-Lengths', 'MESSAGE sip:b@x SIP/2.0\r\nl: 2\r\nContent-Length: 2\r\n\r\nab', /more than one/],
    ['no end of the head', 'MESSAGE sip:b@x SIP/2.0\r\nTo: <sip:b@x>', /no empty line/],
    ['nothing', '', /bad start line/]
  ]
  for (const [what, input, message] of bad) {
    test(`refuses ${what} with a SipParseError`, () => {
      assert.throws(() => parseSip(input), (err: unknown) => err instanceof SipParseError && err.code === 'ERR_SIP_PARSE' && message.test(err.message))
    })
  }
})

test('headerFields: one field a header, folds in its value and raw text; the problem of a bad line', () => {
  const fields = [...headerFields(['Subject: a', '  b', 'l: 0'])]
  assert.deepEqual(fields, [{ name: 'Subject', value: 'a b', raw: 'Subject: a\r\n  b' }, { name: 'l', value: '0', raw: 'l: 0' }])
  assert.deepEqual([...headerFields([' x'])], ['continuation line before any header'])
})

test('contentLength: one, digits only', () => {
  assert.equal(contentLength(['0150']), 150)
  assert.equal(contentLength(['-999']), 'bad Content-Length: "-999"')
  assert.equal(contentLength(['13', '5']), 'more than one Content-Length')
})
