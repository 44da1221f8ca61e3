import assert from 'node:assert/strict'
import { test } from 'node:test'
import { factsOf, Outcomes } from '../../../example/proxy/outcome'
import { parseSip } from '../../../example/sip/parse'
import { unexplainedDrops } from '../../helpers/drops'
import { recordedLog } from '../../helpers/log'

const OPTIONS = parseSip('OPTIONS sip:x SIP/2.0\r\nCall-ID: c1\r\nl: 0\r\n\r\n')

test('a handling that sends something, absorbs, refuses or drops has an outcome; one that does none is logged at error', async () => {
  const { log, entries } = recordedLog()
  const outcomes = new Outcomes(log)
  outcomes.handle(() => ({ direction: 'from-ws' }), () => { outcomes.sent() })
  outcomes.handle(() => ({ direction: 'from-ws' }), () => { outcomes.absorbed('retransmission', factsOf(OPTIONS, 'from-core')) })
  outcomes.handle(() => ({ direction: 'from-ws' }), () => { outcomes.dropped('no reason to go on', factsOf(OPTIONS, 'from-ws', { id: 3 })) })
  outcomes.handle(() => ({ direction: 'from-ws' }), () => { outcomes.refused(404, 'nobody', factsOf(OPTIONS, 'from-ws')) })
  assert.deepEqual(unexplainedDrops(entries), [])
  outcomes.handle(() => ({ direction: 'from-core', first: 'OPTIONS sip:x SIP/2.0' }), () => {})
  const silent = entries.at(-1)
  assert.equal(silent?.msg, 'sip: message left with no outcome')
  assert.equal(silent?.level, 50)
  assert.equal(unexplainedDrops(entries).length, 1)
})

test('the outcome follows the handling through its promises; sent() outside a handling is ignored', async () => {
  const { log, entries } = recordedLog()
  const outcomes = new Outcomes(log)
  outcomes.sent()
  await outcomes.handle(() => ({ direction: 'from-ws' }), async () => {
    await new Promise((resolve) => setImmediate(resolve))
    outcomes.sent()
  })
  await outcomes.handle(() => ({ direction: 'from-ws', waited: true }), async () => { await new Promise((resolve) => setImmediate(resolve)) })
  assert.deepEqual(entries.map((e) => [e.msg, e.waited]), [['sip: message left with no outcome', true]])
})

test('a drop names its reason, direction, method and Call-ID, at info or warn', () => {
  const { log, entries } = recordedLog()
  new Outcomes(log).dropped('forged Via', factsOf(OPTIONS, 'from-ws', { id: 9 }), 'warn')
  assert.deepEqual(entries.map(({ level, outcome, reason, direction, method, callId, id }) => ({ level, outcome, reason, direction, method, callId, id })), [
    { level: 40, outcome: 'dropped', reason: 'forged Via', direction: 'from-ws', method: 'OPTIONS', callId: 'c1', id: 9 }
  ])
})
