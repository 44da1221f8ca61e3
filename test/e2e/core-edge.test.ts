import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { after, before, describe, test } from 'node:test'
import * as JsSIP from 'jssip'
import { splitList } from '../../example/sip/headers'
import { SipRequest, SipResponse, type SipMessage } from '../../example/sip/message'
import type { Kamailio } from '../helpers/kamailio'
import { SIPP, SIPP_HINT, sippPassed, startSipp } from '../helpers/sipp'
import { RawSipClient, within, type Example } from './helpers'
import { incomingCall, incomingMessage, installNodeWebRtc, NO_MEDIA, registered, send, sessionEvent, stop, userAgent } from './jssip-node'
import { coreContacts, registeredPhone, startEdgeWithCore, tokenOf, type EdgeWithCore } from './sip-core'
import { reportedSetUp } from '../helpers/set-up'

function asRequest (message: SipMessage, method: string): SipRequest {
  assert.ok(message instanceof SipRequest && message.method === method, `expected ${method}, got ${message.toString().split('\r\n')[0]}`)
  return message
}

function asResponse (message: SipMessage): SipResponse {
  assert.ok(message instanceof SipResponse, `expected a response, got ${message.toString().split('\r\n')[0]}`)
  return message
}

describe('the example as a WebRTC edge in front of a Kamailio core over UDP', () => {
  let edge: EdgeWithCore
  let core: Kamailio
  let example: Example
  let alice: JsSIP.UA
  let listenPort: number
  const raws: RawSipClient[] = []
  const coreAddress = (): string => edge.coreAddress

  /** A bare client registered through the edge at the core; returns it with its flow token. */
  async function rawRegistered (user: string): Promise<{ client: RawSipClient, token: string }> {
    const client = await RawSipClient.connect(example.wsUrl, user)
    raws.push(client)
    const response = asResponse(await client.register('127.0.0.1', 300))
    assert.equal(response.status, 200)
    const contact = (await coreContacts(core.port, user)).find((c) => c.Address === client.contact)
    assert.ok(contact !== undefined, `${user}'s contact is in the core's usrloc`)
    return { client, token: tokenOf(contact.Path) }
  }

  before(reportedSetUp(async () => {
    assert.ok(existsSync(SIPP), SIPP_HINT)
    JsSIP.debug.disable()
    installNodeWebRtc()
    edge = await startEdgeWithCore('udp')
    ;({ core, example, listenPort } = edge)
    alice = userAgent(example.wsUrl, 'alice').ua
    const done = registered(alice, 'alice')
    alice.start()
    await done
  }))

  after(async () => {
    await Promise.all(raws.map(async (c) => { await c.close() }))
    if (alice !== undefined) await stop(alice, 'alice')
    await edge?.close()
  })

  test('alice registers through the edge: the core stores her Contact unchanged, with the edge\'s Path', async () => {
    const contacts = await coreContacts(core.port, 'alice')
    assert.equal(contacts.length, 1)
    const [contact] = contacts
    assert.match(contact.Address, /^sip:[^@]+@[^;]+\.invalid;transport=ws$/, 'the contact JsSIP made up (RFC 7118 §5.2)')
    assert.match(contact.Path, new RegExp(`^<sip:[A-Za-z0-9_-]{24}@127\\.0\\.0\\.1:${listenPort};lr;ob>$`))
    assert.match(contact.Instance, /^<urn:uuid:/, 'outbound: +sip.instance kept')
  })

  test('alice calls a sipp phone behind the core: INVITE (over TCP: too big for UDP), 200, ACK, BYE', async (t) => {
    const phone = await registeredPhone(coreAddress(), 'uas-answer.xml', 'phone')
    try {
      const started = performance.now()
      const session = alice.call('sip:phone@127.0.0.1', NO_MEDIA)
      let ok: SipResponse | undefined
      session.once('accepted', (e) => { ok = e.response as unknown as SipResponse })
      await sessionEvent(session, 'confirmed', 'the call to be answered and ACKed')
      t.diagnostic(`INVITE → 200 → ACK in ${(performance.now() - started).toFixed(0)} ms`)
      assert.ok(ok !== undefined)
      const routes = (ok as unknown as { getHeaders: (name: string) => string[] }).getHeaders('record-route').flatMap(splitList)
      // The core's double record-route (TCP in, UDP out) shows the INVITE reached it over TCP (RFC 3261 §18.1.1),
      // and the edge's own two routes: core-facing with the flow token, WebSocket-facing.
      assert.ok(routes.some((r) => r.includes(`127.0.0.1:${core.port};transport=tcp`)), routes.join(' | '))
      assert.ok(routes.some((r) => new RegExp(`sip:[A-Za-z0-9_-]{24}@127\\.0\\.0\\.1:${listenPort};lr;r2=on`).test(r)), routes.join(' | '))
      assert.ok(routes.some((r) => /;transport=ws;lr;r2=on/.test(r)), routes.join(' | '))
      const ended = sessionEvent(session, 'ended', 'the call to end')
      session.terminate()
      await ended
      await sippPassed(phone, 'uas-answer.xml')
    } finally {
      await phone.stop()
    }
  })

  test('a phone whose contact has no user part (<sip:127.0.0.1:port;transport=UDP>): alice\'s ACK and BYE reach it (RFC 3261 §16.4)', async () => {
    const phone = await registeredPhone(coreAddress(), 'uas-answer-userless.xml', 'pbx', 'register-userless.xml')
    try {
      const [contact] = await coreContacts(core.port, 'pbx')
      assert.match(contact.Address, /^sip:127\.0\.0\.1:\d+;transport=UDP$/)
      const session = alice.call('sip:pbx@127.0.0.1', NO_MEDIA)
      await sessionEvent(session, 'confirmed', 'the call to be answered')
      await phone.printed('SIPP-GOT-ACK')
      const ended = sessionEvent(session, 'ended', 'the call to end')
      session.terminate()
      await ended
      // The phone checked the Request-URI of the ACK and the BYE: user-less, as its contact.
      await sippPassed(phone, 'uas-answer-userless.xml')
    } finally {
      await phone.stop()
    }
  })

  test('a phone with a user-less contact calls alice; she hangs up: her BYE reaches it', async () => {
    const call = incomingCall(alice)
    const caller = await startSipp('uac-call-userless.xml', { remote: coreAddress(), service: 'alice' })
    try {
      const session = await call
      const confirmed = sessionEvent(session, 'confirmed', 'the ACK')
      session.answer(NO_MEDIA)
      await confirmed
      const ended = sessionEvent(session, 'ended', 'the BYE to be answered')
      session.terminate()
      await ended
      await sippPassed(caller, 'uac-call-userless.xml')
    } finally {
      await caller.stop()
    }
  })

  for (const [scenario, who] of [['uac-call-hangup.xml', 'the phone'], ['uac-call-hear-bye.xml', 'alice']] as const) {
    test(`a sipp phone calls alice through the core; alice answers; ${who} hangs up`, async () => {
      const call = incomingCall(alice)
      const caller = await startSipp(scenario, { remote: coreAddress(), service: 'alice' })
      try {
        const session = await call
        assert.equal(session.direction, 'incoming')
        assert.equal(session.remote_identity.uri.user, 'caller')
        const confirmed = sessionEvent(session, 'confirmed', 'the ACK')
        // Listened for before the ACK: the phone sends ACK and BYE back to back, and both may reach alice in
        // one read, so 'ended' can fire in the same tick as 'confirmed'.
        const ended = sessionEvent(session, 'ended', 'the BYE')
        ended.catch(() => {}) // awaited below; this only keeps an early failure from counting as unhandled
        session.answer(NO_MEDIA)
        await confirmed
        if (who === 'alice') session.terminate()
        await ended
        await sippPassed(caller, scenario)
      } finally {
        await caller.stop()
      }
    })
  }

  test('a MESSAGE each way between alice and a sipp phone', async () => {
    const phone = await registeredPhone(coreAddress(), 'uas-message.xml', 'pager')
    try {
      const result = await within(10000, 'alice → pager', send(alice, 'sip:pager@127.0.0.1', 'hello-pager'))
      assert.deepEqual(result, { ok: true, status: 200, reason: 'OK' })
      assert.equal(await phone.printed('SIPP-MESSAGE-BODY'), 'SIPP-MESSAGE-BODY hello-pager')
      await sippPassed(phone, 'uas-message.xml')
    } finally {
      await phone.stop()
    }
    const received = incomingMessage(alice)
    const sender = await startSipp('uac-message.xml', { remote: coreAddress(), service: 'alice', keys: { text: 'hello-alice' } })
    try {
      const event = await within(10000, 'the MESSAGE for alice', received)
      assert.equal(event.request.body.trim(), 'hello-alice')
      assert.equal(event.request.from.uri.user, 'phone')
      await sippPassed(sender, 'uac-message.xml')
    } finally {
      await sender.stop()
    }
  })

  test('two clients of the edge: a MESSAGE between them stays on the edge (registered here through the core)', async () => {
    const { client: carol } = await rawRegistered('carol')
    const { client: dave } = await rawRegistered('dave')
    carol.send(carol.request('MESSAGE', 'sip:dave@127.0.0.1', { body: 'hi dave' }))
    const message = asRequest(await dave.next(), 'MESSAGE')
    assert.equal(message.body.toString(), 'hi dave')
    // One Via of carol's and one of the edge's: the core never saw it.
    assert.equal(message.getAll('via').flatMap(splitList).length, 2)
    dave.send(dave.answer(message, 200, 'OK'))
    assert.equal(asResponse(await carol.next()).status, 200)
  })

  test('erin\'s WebSocket closes; the core\'s INVITE for her gets 430 Flow Failed, and the caller hears the core\'s 480', async () => {
    const { client: erin } = await rawRegistered('erin')
    await erin.close()
    const caller = await startSipp('uac-call-refused.xml', { remote: coreAddress(), service: 'erin' })
    try {
      // The core turns a 430 into 480 (failure_route in kamailio-core.cfg); any other answer fails the scenario.
      await sippPassed(caller, 'uac-call-refused.xml')
    } finally {
      await caller.stop()
    }
  })

  test('frank has two flows; the first closes; the core\'s next binding takes the call', async () => {
    const { client: gone } = await rawRegistered('frank')
    const { client: live } = await rawRegistered('frank')
    assert.equal((await coreContacts(core.port, 'frank')).length, 2)
    await gone.close()
    const caller = await startSipp('uac-call-hangup.xml', { remote: coreAddress(), service: 'frank' })
    try {
      const invite = asRequest(await live.next(10000), 'INVITE')
      live.send(live.answer(invite, 200, 'OK', { Contact: `<${live.contact}>`, ...recordRoutes(invite) }))
      asRequest(await live.next(), 'ACK')
      const bye = asRequest(await live.next(), 'BYE')
      live.send(live.answer(bye, 200, 'OK'))
      await sippPassed(caller, 'uac-call-hangup.xml')
    } finally {
      await caller.stop()
    }
  })

  test('a forged flow token gets 403 and nothing is relayed; the genuine one reaches the client', async () => {
    const { client, token } = await rawRegistered('grace')
    const forged = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A')
    const mallory = await startSipp('edge-forged.xml', { remote: `127.0.0.1:${listenPort}`, keys: { forged, token } })
    try {
      // Messages reach a connection in order: the first one grace sees is the genuine MESSAGE.
      const message = asRequest(await client.next(10000), 'MESSAGE')
      assert.equal(message.body.toString().trim(), 'genuine')
      client.send(client.answer(message, 200, 'OK'))
      await sippPassed(mallory, 'edge-forged.xml')
    } finally {
      await mallory.stop()
    }
  })

  test('an INVITE the core sends twice over UDP (a retransmission) reaches the client once', async () => {
    const { client, token } = await rawRegistered('heidi')
    const sipp = await startSipp('edge-retransmit.xml', { remote: `127.0.0.1:${listenPort}`, keys: { token } })
    try {
      const invite = asRequest(await client.next(10000), 'INVITE')
      // The core sent INVITE, INVITE again, MESSAGE; messages reach a connection in order, so a relayed
      // retransmission would be a second INVITE here.
      const message = asRequest(await client.next(), 'MESSAGE')
      assert.equal(message.body.toString().trim(), 'after the retransmission')
      client.send(client.answer(message, 200, 'OK'))
      client.send(client.answer(invite, 200, 'OK', { Contact: `<${client.contact}>`, ...recordRoutes(invite) }))
      asRequest(await client.next(), 'ACK')
      const bye = asRequest(await client.next(), 'BYE')
      client.send(client.answer(bye, 200, 'OK'))
      await sippPassed(sipp, 'edge-retransmit.xml')
    } finally {
      await sipp.stop()
    }
  })
})

/** A UAS copies the Record-Route of the request into its 2xx (RFC 3261 §12.1.1). */
function recordRoutes (request: SipRequest): Record<string, string> {
  const routes = request.getAll('record-route')
  return routes.length === 0 ? {} : { 'Record-Route': routes.join(', ') }
}

describe('the edge towards the core over TCP (SIP_LISTEN=tcp)', () => {
  let edge: EdgeWithCore
  let client: RawSipClient | undefined

  before(reportedSetUp(async () => {
    assert.ok(existsSync(SIPP), SIPP_HINT)
    edge = await startEdgeWithCore('tcp')
  }))

  after(async () => {
    await client?.close()
    await edge?.close()
  })

  test('the Path says transport=tcp; the core reaches the client over a TCP connection to the edge, and back', async () => {
    client = await RawSipClient.connect(edge.example.wsUrl, 'judy')
    assert.equal(asResponse(await client.register('127.0.0.1', 300)).status, 200)
    const [contact] = await coreContacts(edge.core.port, 'judy')
    assert.match(contact.Path, new RegExp(`^<sip:[A-Za-z0-9_-]{24}@127\\.0\\.0\\.1:${edge.listenPort};transport=tcp;lr;ob>$`))
    const sender = await startSipp('uac-message.xml', { remote: edge.coreAddress, service: 'judy', keys: { text: 'over-tcp' } })
    try {
      const message = asRequest(await client.next(10000), 'MESSAGE')
      assert.equal(message.body.toString().trim(), 'over-tcp')
      client.send(client.answer(message, 200, 'OK'))
      await sippPassed(sender, 'uac-message.xml')
    } finally {
      await sender.stop()
    }
  })
})
