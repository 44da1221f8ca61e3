import assert from 'node:assert/strict'
import { after, before, describe, mock, test } from 'node:test'
import { ClientTransactions } from '../../../example/core/client-transactions'
import type { SipPeer } from '../../../example/sip/address'
import { SipRequest, SipResponse, type SipMessage } from '../../../example/sip/message'
import type { RawSipClient } from '../../e2e/helpers'
import { assertEveryDropExplained } from '../../helpers/drops'
import { recordedLog } from '../../helpers/log'
import { within } from '../../helpers/pool'
import { bridgeEdge, coreAnswer, RawCore, type BridgeEdge } from '../../helpers/raw-core'
import { reportedSetUp } from '../../helpers/set-up'

const asRequest = (message: SipMessage): SipRequest => { assert.ok(message instanceof SipRequest, message.toString().split('\r\n')[0]); return message }
const asResponse = (message: SipMessage): SipResponse => { assert.ok(message instanceof SipResponse, message.toString().split('\r\n')[0]); return message }

const UDP: SipPeer = { transport: 'udp', address: '127.0.0.1', port: 5060 }
const TCP: SipPeer = { transport: 'tcp', address: '127.0.0.1', port: 5060 }

describe('ClientTransactions: RFC 3261 §17.1 timers, on the test runner\'s clock', () => {
  const timers = { t1: 500, t2: 4000 }
  let sent: number[]
  let timedOut: number
  let transactions: ClientTransactions
  const clock = (): number => Date.now()

  function setUp (): void {
    mock.timers.enable({ apis: ['setTimeout', 'Date'] })
    sent = []
    timedOut = 0
    transactions = new ClientTransactions(() => { sent.push(clock()) }, timers)
  }
  /** The clock moved on in steps of 50 ms, so each timer fires at its own time. */
  const advance = (ms: number): void => {
    for (let t = 0; t < ms; t += 50) mock.timers.tick(50)
  }
  const done = (): void => {
    transactions.close()
    mock.timers.reset()
  }

  test('INVITE over UDP: Timer A from T1, doubling; Timer B at 64×T1 answers 408 (through onTimeout) once', () => {
    setUp()
    try {
      const start = clock()
      transactions.start('z9hG4bK1', 'INVITE', Buffer.from('INVITE'), UDP, () => { timedOut++ })
      advance(64 * 500)
      assert.deepEqual(sent.map((t) => t - start), [500, 1500, 3500, 7500, 15500, 31500])
      assert.equal(timedOut, 1)
      assert.equal(transactions.size, 0)
    } finally { done() }
  })

  test('INVITE: a provisional stops the retransmissions and Timer B; the final ends it', () => {
    setUp()
    try {
      transactions.start('z9hG4bK1', 'INVITE', Buffer.from('INVITE'), UDP, () => { timedOut++ })
      advance(600)
      assert.equal(sent.length, 1)
      assert.equal(transactions.responded('z9hG4bK1', 'INVITE', 100), true)
      advance(64 * 500)
      assert.equal(sent.length, 1)
      assert.equal(timedOut, 0, 'ringing: Timer C, not B, bounds the wait')
      assert.equal(transactions.responded('z9hG4bK1', 'INVITE', 200), true)
      assert.equal(transactions.size, 0)
      assert.equal(transactions.responded('z9hG4bK1', 'INVITE', 200), false, 'a retransmitted 2xx matches nothing any more')
    } finally { done() }
  })

  test('a non-INVITE: Timer E doubles up to T2, stays at T2 after a provisional; Timer F answers 408', () => {
    setUp()
    try {
      const start = clock()
      transactions.start('z9hG4bK2', 'MESSAGE', Buffer.from('MESSAGE'), UDP, () => { timedOut++ })
      advance(8000)
      assert.deepEqual(sent.map((t) => t - start), [500, 1500, 3500, 7500])
      transactions.responded('z9hG4bK2', 'MESSAGE', 180)
      advance(64 * 500 - 8000)
      assert.deepEqual(sent.slice(4).map((t) => t - start), [11500, 15500, 19500, 23500, 27500, 31500])
      assert.equal(timedOut, 1)
    } finally { done() }
  })

  test('over TCP nothing is retransmitted, but Timer F still runs; ACK has no transaction; a CANCEL is its own', () => {
    setUp()
    try {
      transactions.start('z9hG4bK3', 'MESSAGE', Buffer.from('MESSAGE'), TCP, () => { timedOut++ })
      transactions.start('z9hG4bK4', 'ACK', Buffer.from('ACK'), UDP, () => { timedOut++ })
      assert.equal(transactions.size, 1)
      transactions.start('z9hG4bK5', 'INVITE', Buffer.from('INVITE'), TCP, () => {})
      transactions.start('z9hG4bK5', 'CANCEL', Buffer.from('CANCEL'), TCP, () => {})
      assert.equal(transactions.responded('z9hG4bK5', 'CANCEL', 200), true)
      assert.equal(transactions.size, 2, 'the INVITE is still pending')
      advance(64 * 500)
      assert.deepEqual(sent, [])
      assert.equal(timedOut, 1)
    } finally { done() }
  })

  test('past maxPending, a request is not tracked', () => {
    setUp()
    try {
      const small = new ClientTransactions(() => {}, timers, 1)
      assert.equal(small.start('a', 'MESSAGE', Buffer.alloc(0), UDP, () => {}), true)
      assert.equal(small.start('b', 'MESSAGE', Buffer.alloc(0), UDP, () => {}), false)
      small.close()
    } finally { done() }
  })
})

describe('the edge retransmits what it sends the core over UDP, and answers 408 for a silent core', () => {
  const logged = recordedLog()
  const t1 = 50
  let core: RawCore
  let edge: BridgeEdge
  let alice: RawSipClient

  before(reportedSetUp(async () => {
    core = await RawCore.start()
    edge = await bridgeEdge(core, logged.log, { timers: { t1, t2: 8 * t1 } })
    alice = await edge.client('alice')
  }))
  after(async () => {
    await edge?.close()
    await core?.close()
    assertEveryDropExplained(logged.entries)
  })

  test('a MESSAGE whose first copy is lost: the copy Timer E sends gets through, byte for byte, and alice hears the 200', async () => {
    core.ignore(1)
    const before = core.received
    alice.send(alice.request('MESSAGE', 'sip:phone@core.example', { body: 'again' }))
    const { message, bytes } = await core.next()
    assert.equal(core.received - before, 2, 'the first copy was lost, the second arrived')
    assert.equal(message.body.toString(), 'again')
    core.send(coreAnswer(asRequest(message), 200), edge.bridge.local.port)
    assert.equal(asResponse(await alice.next()).status, 200)
    assert.ok(bytes.length > 0)
  })

  test('an INVITE whose first copy is lost: Timer A sends it again; the 100 Trying stops it', async () => {
    core.ignore(1)
    alice.send(alice.request('INVITE', 'sip:phone@core.example'))
    const invite = asRequest((await core.next()).message)
    core.send(coreAnswer(invite, 100, {}, 'Trying'), edge.bridge.local.port)
    const seen = core.received
    // Nothing to await: no copy may come once the 100 arrived. Timer A would have sent one within 2×T1.
    await new Promise((resolve) => setTimeout(resolve, 8 * t1))
    assert.equal(core.received, seen, 'no copy after the 100 Trying')
    core.send(coreAnswer(invite, 486, {}, 'Busy Here'), edge.bridge.local.port)
    assert.equal(asResponse(await alice.next()).status, 486, 'the 100 itself never reached alice')
  })

  test('a MESSAGE the core never answers: copies until Timer F, then 408 from the edge, logged', async () => {
    const before = core.received
    core.ignore(1000)
    alice.send(alice.request('MESSAGE', 'sip:phone@core.example'))
    const timeout = asResponse(await alice.next(64 * t1 + 3000))
    assert.equal(timeout.status, 408)
    assert.equal(timeout.getAll('via').length, 1, 'the 408 went by alice\'s own Via')
    assert.ok(core.received - before >= 4, `the edge sent copies (${core.received - before})`)
    assert.equal((await within(logged.next('sip: request refused', (e) => e.answer === 408), 3000, () => 'the log line')).reason, 'the core did not answer')
    core.ignore(0)
  })

  test('an INVITE the core never answers: 408 at Timer B, and alice\'s ACK for it stops at the edge', async () => {
    core.ignore(1000)
    const invite = alice.request('INVITE', 'sip:phone@core.example', { branch: 'z9hG4bKsilent' })
    alice.send(invite)
    const timeout = asResponse(await alice.next(64 * t1 + 3000))
    assert.equal(timeout.status, 408)
    const before = core.received
    alice.send(invite.replace(/^INVITE/, 'ACK').replace('CSeq: 1 INVITE', 'CSeq: 1 ACK').replace(/To: <([^>]*)>/, `To: ${timeout.get('to') ?? ''}`))
    assert.equal((await within(logged.next('sip: ACK for an answer of the edge\'s own absorbed'), 3000, () => 'the log line')).direction, 'from-ws')
    assert.equal(core.received, before, 'nothing went to the core')
    core.ignore(0)
  })
})
