import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { formatParams, listElements, parseCSeq, parseParams, parseSeconds, splitList, withOptionTags } from '../../../example/sip/headers'
import { parseSip } from '../../../example/sip/parse'

describe('header values', () => {
  test('splitList keeps commas inside quotes and angle brackets', () => {
    assert.deepEqual(splitList('<sip:a@x;p=1,2>;q=0.5, "Doe, John" <sip:b@y>, sip:c@z'), ['<sip:a@x;p=1,2>;q=0.5', '"Doe, John" <sip:b@y>', 'sip:c@z'])
    assert.deepEqual(splitList(' a ,, b '), ['a', 'b'])
    assert.deepEqual(listElements(' a ,, b '), ['a', '', 'b'], 'listElements keeps the empty ones, for the checks')
  })

  test('splitList: an escaped quote inside a quoted string does not end it', () => {
    assert.deepEqual(splitList('"a \\", b" <sip:a@x>, <sip:b@y>'), ['"a \\", b" <sip:a@x>', '<sip:b@y>'])
    assert.deepEqual(splitList(''), [])
  })

  test('parseCSeq', () => {
    assert.deepEqual(parseCSeq('42 MESSAGE'), { seq: 42, method: 'MESSAGE' })
    assert.equal(parseCSeq('x MESSAGE'), null)
    assert.equal(parseCSeq('4294967296 INVITE'), null)
  })

  test('parseCSeq of a real request\'s CSeq, with the spaces RFC 3261 allows around it', () => {
    const request = parseSip('OPTIONS sip:x SIP/2.0\r\nCSeq:   4294967295   OPTIONS  \r\n\r\n')
    assert.deepEqual(parseCSeq(request.get('cseq') ?? ''), { seq: 4294967295, method: 'OPTIONS' })
  })

  test('parseParams', () => {
    assert.deepEqual(parseParams(';A=1; b ;c="x;y"'), new Map([['a', '1'], ['b', null], ['c', '"x;y"']]))
    assert.equal(parseParams(';bad name=1'), null)
    assert.equal(parseParams(';a;;b'), null, 'an empty parameter')
    assert.equal(parseParams(';a="open'), null, 'an unclosed quote')
    assert.deepEqual(parseParams(' ; newparam =  newvalue ; secondparam ; q = 0.33'), new Map([['newparam', 'newvalue'], ['secondparam', null], ['q', '0.33']]), 'LWS around ; and =')
    assert.deepEqual(parseParams(';received=[2001:db8::9:255];maddr=2001:db8::9:1'), new Map([['received', '[2001:db8::9:255]'], ['maddr', '2001:db8::9:1']]), 'IPv6 values')
  })

  test('formatParams writes what parseParams read, names lower-cased, quoted values kept', () => {
    const params = parseParams(';Expires=60;+sip.instance="<urn:uuid:1;2>";ob')
    assert.ok(params !== null)
    assert.equal(formatParams(params), ';expires=60;+sip.instance="<urn:uuid:1;2>";ob')
    assert.equal(formatParams(new Map()), '')
  })

  test('parseSeconds: delta-seconds, capped at 2^32-1; anything else is null', () => {
    assert.equal(parseSeconds(' 600 '), 600)
    assert.equal(parseSeconds('0'), 0)
    assert.equal(parseSeconds('99999999999'), 0xffffffff)
    for (const bad of ['', '-1', '1.5', '60s', 'never']) assert.equal(parseSeconds(bad), null, bad)
  })

  test('withOptionTags adds the tags missing, whatever their case, keeping the others in order', () => {
    assert.equal(withOptionTags(undefined, ['path', 'outbound']), 'path, outbound')
    assert.equal(withOptionTags('timer, PATH', ['path', 'outbound']), 'timer, PATH, outbound')
    assert.equal(withOptionTags('outbound,path', ['path', 'outbound']), 'outbound, path')
  })
})
