import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { after, before, describe, test } from 'node:test'
import * as JsSIP from 'jssip'
import type { RTCSession } from 'jssip/lib/RTCSession'
import { BARESIP, BARESIP_HINT, startBaresip, type Softphone } from '../helpers/baresip'
import { reportedSetUp } from '../helpers/set-up'
import { within } from './helpers'
import { incomingCall, installNodeWebRtc, NO_MEDIA, registered, sessionEvent, stop, userAgent } from './jssip-node'
import { coreContacts, startEdgeWithCore, type EdgeWithCore } from './sip-core'
import { loadSipJs, nextInvitation, NO_MEDIA_SDH, peer, sessionState, type Peer, type SipJs } from './sipjs-node'

/** JsSIP's hold and unhold resolve once the re-INVITE got its 2xx. */
async function reinvite (session: RTCSession, what: 'hold' | 'unhold'): Promise<void> {
  await within(10_000, `alice's ${what} re-INVITE to be answered`, new Promise<void>((resolve, reject) => {
    const sent = what === 'hold' ? session.hold({}, resolve) : session.unhold({}, resolve)
    if (!sent) reject(new Error(`JsSIP would not ${what}`))
  }))
}

describe('a real softphone (baresip) behind the Kamailio core, calling and called through the edge', () => {
  let edge: EdgeWithCore
  let phone: Softphone
  let desk: Softphone
  let alice: JsSIP.UA
  let sip: SipJs
  let bob: Peer

  before(reportedSetUp(async () => {
    assert.ok(existsSync(BARESIP), BARESIP_HINT)
    JsSIP.debug.disable()
    installNodeWebRtc()
    edge = await startEdgeWithCore('udp')
    // phone answers at once; desk rings until told to answer, for the CANCELs.
    phone = await startBaresip({ user: 'phone', registrar: edge.coreAddress })
    desk = await startBaresip({ user: 'desk', registrar: edge.coreAddress, answer: 'manual' })
    alice = userAgent(edge.example.wsUrl, 'alice').ua
    const done = registered(alice, 'alice')
    alice.start()
    await done
    sip = await loadSipJs()
    bob = await peer(sip, edge.example.wsUrl, 'bob')
  }))

  after(async () => {
    if (alice !== undefined) await stop(alice, 'alice')
    if (bob !== undefined) await within(5000, 'bob to stop', bob.ua.stop())
    await phone?.stop()
    await desk?.stop()
    await edge?.close()
  })

  test('the softphone is registered at the core: its own Contact, no Path', async () => {
    const [contact] = await coreContacts(edge.core.port, 'phone')
    assert.match(contact.Address, /^sip:phone-[^@]+@127\.0\.0\.1:\d+$/)
    assert.equal(contact.Path, '[not set]')
  })

  test('alice (JsSIP) calls the softphone: INVITE, 200, ACK; she holds and resumes (re-INVITEs); she hangs up (BYE)', async (t) => {
    const started = performance.now()
    const session = alice.call('sip:phone@127.0.0.1', NO_MEDIA)
    await sessionEvent(session, 'confirmed', 'the softphone to answer and alice to ACK')
    t.diagnostic(`INVITE → 200 → ACK in ${(performance.now() - started).toFixed(0)} ms`)
    await phone.event('CALL_ESTABLISHED')
    await reinvite(session, 'hold')
    assert.equal(session.isOnHold().local, true)
    await reinvite(session, 'unhold')
    const ended = sessionEvent(session, 'ended', 'the call to end')
    session.terminate()
    await ended
    assert.equal((await phone.event('CALL_CLOSED')).peeruri, 'sip:alice@127.0.0.1')
  })

  test('alice calls; the softphone hangs up: its BYE reaches her', async () => {
    const session = alice.call('sip:phone@127.0.0.1', NO_MEDIA)
    await sessionEvent(session, 'confirmed', 'the call to be answered')
    await phone.event('CALL_ESTABLISHED')
    const ended = new Promise<string>((resolve) => { session.once('ended', (e) => { resolve(e.originator) }) })
    assert.equal((await phone.command('hangup')).ok, true)
    assert.equal(await within(10_000, 'the BYE to reach alice', ended), 'remote')
    await phone.event('CALL_CLOSED')
  })

  test('the softphone calls alice; she answers; it holds and resumes (re-INVITEs to the browser side); she hangs up', async () => {
    const call = incomingCall(alice)
    assert.equal((await phone.command('dial', 'sip:alice@127.0.0.1')).ok, true)
    const session = await call
    assert.equal(session.remote_identity.uri.user, 'phone')
    const confirmed = sessionEvent(session, 'confirmed', 'the ACK')
    session.answer(NO_MEDIA)
    await confirmed
    await phone.event('CALL_ESTABLISHED')
    const held = new Promise<void>((resolve) => { session.once('hold', (e) => { if (e.originator === 'remote') resolve() }) })
    // Its resume may go only once its hold's re-INVITE has its answer (RFC 3261 §14.1): that answer's event, not an older one.
    phone.forget('CALL_REMOTE_SDP')
    assert.equal((await phone.command('hold')).ok, true)
    await within(10_000, 'the softphone\'s hold re-INVITE', held)
    await phone.event('CALL_REMOTE_SDP', (e) => e.param === 'answer')
    const resumed = new Promise<void>((resolve) => { session.once('unhold', (e) => { if (e.originator === 'remote') resolve() }) })
    phone.forget('CALL_REMOTE_SDP')
    assert.equal((await phone.command('resume')).ok, true)
    await within(10_000, 'the softphone\'s resume re-INVITE', resumed)
    await phone.event('CALL_REMOTE_SDP', (e) => e.param === 'answer')
    const ended = sessionEvent(session, 'ended', 'the call to end')
    session.terminate()
    await ended
    await phone.event('CALL_CLOSED')
  })

  test('CANCEL before answer, both ways: alice gives up on a ringing desk phone; the desk phone gives up on alice', async () => {
    const session = alice.call('sip:desk@127.0.0.1', NO_MEDIA)
    await desk.event('CALL_INCOMING')
    const failed = new Promise<string>((resolve) => { session.once('failed', (e) => { resolve(e.cause ?? '') }) })
    session.terminate()
    assert.equal(await within(10_000, 'alice\'s call to end canceled', failed), JsSIP.C.causes.CANCELED)
    await desk.event('CALL_CLOSED')

    const call = incomingCall(alice)
    assert.equal((await desk.command('dial', 'sip:alice@127.0.0.1')).ok, true)
    const ringing = await call
    const canceled = new Promise<{ originator: string, cause: string }>((resolve) => { ringing.once('failed', (e) => { resolve({ originator: e.originator, cause: e.cause ?? '' }) }) })
    assert.equal((await desk.command('hangup')).ok, true)
    assert.deepEqual(await within(10_000, 'the desk phone\'s CANCEL to reach alice', canceled), { originator: 'remote', cause: JsSIP.C.causes.CANCELED })
    await desk.event('CALL_CLOSED')
  })

  test('bob (sip.js) calls the softphone and hangs up; the softphone calls bob and hangs up', async () => {
    const inviter = new sip.Inviter(bob.ua, sip.UserAgent.makeURI('sip:phone@127.0.0.1') ?? assert.fail(), { sessionDescriptionHandlerOptions: NO_MEDIA_SDH })
    await inviter.invite()
    await sessionState(sip, inviter, 'Established')
    await phone.event('CALL_ESTABLISHED')
    await inviter.bye()
    await sessionState(sip, inviter, 'Terminated')
    await phone.event('CALL_CLOSED')

    const incoming = nextInvitation(bob)
    assert.equal((await phone.command('dial', 'sip:bob@127.0.0.1')).ok, true)
    const invitation = await incoming
    await invitation.accept({ sessionDescriptionHandlerOptions: NO_MEDIA_SDH })
    await sessionState(sip, invitation, 'Established')
    await phone.event('CALL_ESTABLISHED')
    assert.equal((await phone.command('hangup')).ok, true)
    await sessionState(sip, invitation, 'Terminated')
    await phone.event('CALL_CLOSED')
  })
})
