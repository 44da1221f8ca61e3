import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DEFAULT_EXPIRES, register } from '../../../example/proxy/register'
import { Registrar } from '../../../example/proxy/registrar'
import { SipRequest } from '../../../example/sip/message'
import { parseSip } from '../../../example/sip/parse'
import { recordedLog } from '../../helpers/log'

function registerRequest (headers: Record<string, string>, to = '<sip:alice@example.test>'): SipRequest {
  let text = 'REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/WS a.invalid;branch=z9hG4bK1\r\n'
  text += `From: ${to};tag=1\r\nTo: ${to}\r\nCall-ID: r1\r\nCSeq: 1 REGISTER\r\n`
  for (const [name, value] of Object.entries(headers)) text += `${name}: ${value}\r\n`
  const message = parseSip(text + 'Content-Length: 0\r\n\r\n')
  assert.ok(message instanceof SipRequest)
  return message
}

test('contacts are bound to the AOR\'s user for the connection, capped at maxExpires; the 200 lists them', () => {
  let now = 1_000_000
  const registrar = new Registrar(32, () => now)
  const { log, messages } = recordedLog()
  const request = registerRequest({ Contact: '<sip:a1@x.invalid;transport=ws>;+sip.instance="<urn:uuid:1>", <sip:a2@y.invalid>;expires=60', Expires: '7200' })
  const answer = register(registrar, log, 600, 5, request)
  assert.deepEqual(answer, {
    status: 200,
    reason: 'OK',
    extra: [['Contact', '<sip:a1@x.invalid;transport=ws>;+sip.instance="<urn:uuid:1>";expires=600'], ['Contact', '<sip:a2@y.invalid>;expires=60']],
    written: true
  })
  assert.deepEqual(registrar.bindings('alice').map((b) => [b.connectionId, b.uri]), [[5, 'sip:a1@x.invalid;transport=ws'], [5, 'sip:a2@y.invalid']])
  assert.deepEqual(messages(), ['sip: registered', 'sip: registered'])
  now += 60_000
  assert.equal(registrar.bindings('alice').length, 1, 'the 60 s one expired')
})

test('no Expires: the default; expires=0 unregisters; Contact: * with Expires: 0 removes every binding', () => {
  const registrar = new Registrar()
  const { log, messages } = recordedLog()
  register(registrar, log, 1_000_000, 1, registerRequest({ Contact: '<sip:a1@x.invalid>' }))
  assert.equal(registrar.contactValue(registrar.bindings('alice')[0]), `<sip:a1@x.invalid>;expires=${DEFAULT_EXPIRES}`)
  const removed = register(registrar, log, 600, 1, registerRequest({ Contact: '<sip:a1@x.invalid>;expires=0' }))
  assert.deepEqual(removed, { status: 200, reason: 'OK', extra: [], written: true })
  register(registrar, log, 600, 1, registerRequest({ Contact: '<sip:a1@x.invalid>, <sip:a2@x.invalid>' }))
  assert.equal(registrar.bindings('alice').length, 2)
  assert.deepEqual(register(registrar, log, 600, 1, registerRequest({ Contact: '*', Expires: '0' })), { status: 200, reason: 'OK', extra: [], written: true })
  assert.equal(registrar.bindings('alice').length, 0)
  assert.deepEqual(messages(), ['sip: registered', 'sip: unregistered', 'sip: registered', 'sip: registered', 'sip: all bindings removed'])
})

test('a REGISTER with no Contact lists the bindings (RFC 3261 §10.2.3)', () => {
  const registrar = new Registrar()
  const { log } = recordedLog()
  register(registrar, log, 600, 1, registerRequest({ Contact: '<sip:a1@x.invalid>' }))
  const listed = register(registrar, log, 600, 2, registerRequest({}))
  assert.equal(listed.status, 200)
  assert.deepEqual(listed.extra.map(([name]) => name), ['Contact'])
})

test('each refusal is a 400 with a Warning naming the problem, and binds nothing', () => {
  const registrar = new Registrar()
  const { log } = recordedLog()
  const cases: Array<[SipRequest, string]> = [
    [registerRequest({ Contact: '<sip:a1@x.invalid>' }, '<sip:example.test>'), 'To must name a user'],
    [registerRequest({ Contact: '<sip:a1@x.invalid>', Expires: 'soon' }), 'bad Expires'],
    [registerRequest({ Contact: '*' }), 'Contact: * needs Expires: 0'],
    [registerRequest({ Contact: '<sip:a1@x.invalid>, *' }), 'bad Contact'],
    [registerRequest({ Contact: '<sip:a1@x.invalid>, <not a uri>' }), 'bad Contact'],
    [registerRequest({ Contact: '<sip:a1@x.invalid>;expires=never' }), 'bad expires parameter']
  ]
  for (const [request, warning] of cases) {
    assert.deepEqual(register(registrar, log, 600, 1, request), { status: 400, reason: 'Bad Request', extra: [['Warning', `399 - "${warning}"`]], written: false }, warning)
  }
  assert.equal(registrar.size, 0)
})

test('past maxPerConnection bindings: 403, answered at once', () => {
  const registrar = new Registrar(1)
  const { log } = recordedLog()
  assert.equal(register(registrar, log, 600, 1, registerRequest({ Contact: '<sip:a1@x.invalid>' })).status, 200)
  assert.deepEqual(register(registrar, log, 600, 1, registerRequest({ Contact: '<sip:a2@x.invalid>' })), {
    status: 403, reason: 'Forbidden', extra: [['Warning', '399 - "at most 1 bindings per connection"']], written: false
  })
})
