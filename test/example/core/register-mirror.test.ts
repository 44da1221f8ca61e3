import assert from 'node:assert/strict'
import { test } from 'node:test'
import { RegisterMirror } from '../../../example/core/register-mirror'
import { Registrar } from '../../../example/proxy/registrar'
import { SipRequest, SipResponse } from '../../../example/sip/message'
import { parseSip } from '../../../example/sip/parse'
import { recordedLog } from '../../helpers/log'

const HEAD = 'Via: SIP/2.0/WS a.invalid;branch=z9hG4bK1\r\nFrom: <sip:alice@example.test>;tag=1\r\nTo: <sip:alice@example.test>\r\nCall-ID: reg-1\r\nCSeq: 2 REGISTER\r\n'

function registerRequest (contacts: string): SipRequest {
  const message = parseSip(`REGISTER sip:example.test SIP/2.0\r\n${HEAD}Contact: ${contacts}\r\nContent-Length: 0\r\n\r\n`)
  assert.ok(message instanceof SipRequest)
  return message
}

function coreAnswer (status: number, headers = '', callId = 'reg-1'): SipResponse {
  const message = parseSip(`SIP/2.0 ${status} Whatever\r\n${HEAD.replace('reg-1', callId)}${headers}Content-Length: 0\r\n\r\n`)
  assert.ok(message instanceof SipResponse)
  return message
}

test('the bindings the core\'s 2xx lists are recorded for the connection, with the expiry the core granted', () => {
  let now = 1_000_000
  const registrar = new Registrar(32, () => now)
  const { log, messages } = recordedLog()
  const mirror = new RegisterMirror(registrar, log, () => now)
  mirror.forwarded(4, registerRequest('<sip:a1@x.invalid;transport=ws>;+sip.instance="<urn:uuid:1>", <sip:a2@x.invalid>'))
  mirror.answered(4, coreAnswer(100))
  assert.equal(registrar.size, 0, 'a provisional answer changes nothing')
  mirror.answered(4, coreAnswer(200, 'Contact: <sip:a1@x.invalid;transport=ws>;expires=120\r\nContact: <sip:someone-else@y.invalid>;expires=60\r\n'))
  assert.deepEqual(registrar.bindings('alice').map((b) => [b.connectionId, b.uri, registrar.contactValue(b)]), [
    [4, 'sip:a1@x.invalid;transport=ws', '<sip:a1@x.invalid;transport=ws>;+sip.instance="<urn:uuid:1>";expires=120']
  ], 'a2 was not granted: expires 0; the other UA\'s contact is not ours')
  assert.deepEqual(messages(), ['sip: registered at the core', 'sip: unregistered at the core'])
})

test('an Expires header applies to contacts without their own; a second answer to the same REGISTER is ignored', () => {
  const registrar = new Registrar()
  const { log } = recordedLog()
  const mirror = new RegisterMirror(registrar, log)
  mirror.forwarded(4, registerRequest('<sip:a1@x.invalid>'))
  mirror.answered(4, coreAnswer(200, 'Expires: 300\r\nContact: <sip:a1@x.invalid>\r\n'))
  assert.match(registrar.contactValue(registrar.bindings('alice')[0]), /;expires=(300|299)$/)
  mirror.answered(4, coreAnswer(200, 'Contact: <sip:a1@x.invalid>;expires=0\r\n'))
  assert.equal(registrar.bindings('alice').length, 1, 'the REGISTER was answered already')
})

test('a refusal, an answer to another REGISTER or for another connection records nothing', () => {
  const registrar = new Registrar()
  const { log } = recordedLog()
  const mirror = new RegisterMirror(registrar, log)
  mirror.forwarded(4, registerRequest('<sip:a1@x.invalid>'))
  mirror.answered(5, coreAnswer(200, 'Contact: <sip:a1@x.invalid>;expires=60\r\n'))
  mirror.answered(4, coreAnswer(200, 'Contact: <sip:a1@x.invalid>;expires=60\r\n', 'reg-other'))
  mirror.answered(4, coreAnswer(403))
  mirror.answered(4, coreAnswer(200, 'Contact: <sip:a1@x.invalid>;expires=60\r\n'))
  assert.equal(registrar.size, 0, 'the 403 ended that REGISTER')
})

test('pending REGISTERs the core never answered are forgotten after 64×T1', () => {
  let now = 0
  const registrar = new Registrar(32, () => now)
  const { log } = recordedLog()
  const mirror = new RegisterMirror(registrar, log, () => now)
  mirror.forwarded(4, registerRequest('<sip:a1@x.invalid>'))
  now = 32_000
  // Another REGISTER sweeps what expired.
  mirror.forwarded(6, parseSip(`REGISTER sip:example.test SIP/2.0\r\n${HEAD.replace('reg-1', 'reg-2')}Contact: <sip:b@x.invalid>\r\n\r\n`) as SipRequest)
  mirror.answered(4, coreAnswer(200, 'Contact: <sip:a1@x.invalid>;expires=60\r\n'))
  assert.equal(registrar.size, 0)
})
