import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { UDP_LIMIT } from '../../../example/core/bridge'
import { splitList } from '../../../example/sip/headers'
import { SipRequest, SipResponse, type SipMessage } from '../../../example/sip/message'
import { parseUri } from '../../../example/sip/uri'
import { topVia } from '../../../example/sip/via'
import type { RawSipClient } from '../../e2e/helpers'
import { assertEveryDropExplained } from '../../helpers/drops'
import { recordedLog } from '../../helpers/log'
import { within } from '../../helpers/pool'
import { bridgeEdge, coreAnswer, RawCore, type BridgeEdge } from '../../helpers/raw-core'
import { reportedSetUp } from '../../helpers/set-up'

const asRequest = (message: SipMessage): SipRequest => { assert.ok(message instanceof SipRequest, message.toString().split('\r\n')[0]); return message }
const asResponse = (message: SipMessage): SipResponse => { assert.ok(message instanceof SipResponse, message.toString().split('\r\n')[0]); return message }

describe('the bridge: what WebSocket clients send goes to the core, and back', () => {
  const logged = recordedLog()
  let core: RawCore
  let edge: BridgeEdge
  let alice: RawSipClient

  before(reportedSetUp(async () => {
    core = await RawCore.start()
    edge = await bridgeEdge(core, logged.log)
    alice = await edge.client('alice')
  }))
  after(async () => {
    await edge?.close()
    await core?.close()
    assertEveryDropExplained(logged.entries)
  })

  test('REGISTER: to the core with a Path holding the flow token and Supported path, outbound; the 2xx back to the client, and mirrored', async () => {
    alice.send(alice.request('REGISTER', 'sip:example.test', { to: 'sip:alice@example.test', headers: { Supported: 'gruu' } }))
    const { message, transport } = await core.next()
    const request = asRequest(message)
    assert.equal(transport, 'udp')
    const path = /^<sip:([A-Za-z0-9_-]{24})@127\.0\.0\.1:(\d+);lr;ob>$/.exec(request.get('path') ?? '')
    assert.ok(path !== null, request.get('path'))
    assert.equal(Number(path[2]), edge.bridge.local.port)
    assert.equal(request.get('supported'), 'gruu, path, outbound')
    const via = topVia(request)
    assert.equal(via?.protocol, 'SIP/2.0/UDP')
    assert.equal(via?.params.get('cid'), String(alice.idIn(edge.app)))
    assert.equal(via?.params.has('rport'), true)
    core.send(coreAnswer(request, 200, { Contact: `<${alice.contact}>;expires=300` }), edge.bridge.local.port)
    const ok = asResponse(await alice.next())
    assert.equal(ok.status, 200)
    assert.equal(ok.getAll('via').flatMap(splitList).length, 1)
    assert.equal(edge.registrar.lookup('alice')?.uri, alice.contact)
  })

  test('an INVITE from a client is record-routed twice: the core-facing route with the token on top; the core\'s 100 Trying stops at the edge', async () => {
    alice.send(alice.request('INVITE', 'sip:phone@core.example'))
    const request = asRequest((await core.next()).message)
    const routes = request.getAll('record-route').flatMap(splitList)
    assert.equal(routes.length, 2)
    assert.match(routes[0], new RegExp(`^<sip:[A-Za-z0-9_-]{24}@127\\.0\\.0\\.1:${edge.bridge.local.port};lr;r2=on>$`))
    assert.equal(routes[1], `<sip:127.0.0.1:${edge.port};transport=ws;lr;r2=on>`)
    assert.equal(edge.bridge.namesEdge(parseUri(routes[0].slice(1, routes[0].indexOf('>'))) ?? assert.fail()), true)
    core.send(coreAnswer(request, 100, {}, 'Trying'), edge.bridge.local.port)
    core.send(coreAnswer(request, 486, {}, 'Busy Here'), edge.bridge.local.port)
    // RFC 3261 §16.7 step 3: 100 Trying is hop by hop; the first thing alice hears is the 486.
    assert.equal(asResponse(await alice.next()).status, 486)
    assert.equal((await within(logged.next('sip: 100 Trying absorbed'), 3000, () => 'the log line')).direction, 'from-core')
  })

  test('the edge\'s own routes go, a loose route to the core stays; a strict next hop gets the Request-URI as its last Route (RFC 3261 §16.6 step 6)', async () => {
    const coreFacing = `<sip:127.0.0.1:${edge.bridge.local.port};lr;r2=on>`
    const wsFacing = `<sip:127.0.0.1:${edge.port};transport=ws;lr;r2=on>`
    alice.send(alice.request('BYE', 'sip:bob@phone.example', { headers: { Route: `${wsFacing}, ${coreFacing}, <sip:core.example;lr>` } }))
    const loose = asRequest((await core.next()).message)
    assert.equal(loose.uri, 'sip:bob@phone.example')
    assert.deepEqual(loose.getAll('route').flatMap(splitList), ['<sip:core.example;lr>'])
    alice.send(alice.request('BYE', 'sip:bob@phone.example', { headers: { Route: `${wsFacing}, ${coreFacing}, <sip:strict.example>, <sip:next.example;lr>` } }))
    const strict = asRequest((await core.next()).message)
    assert.equal(strict.uri, 'sip:strict.example')
    assert.deepEqual(strict.getAll('route').flatMap(splitList), ['<sip:next.example;lr>', '<sip:bob@phone.example>'])
  })

  test('Request-URIs with no user part that do not name the edge go to the core: a phone\'s contact, a service (RFC 3261 §16.4)', async () => {
    for (const uri of ['sip:127.0.0.1:5091', 'sip:ivr.example.com', 'sip:[::1]:5092;transport=UDP']) {
      alice.send(alice.request('OPTIONS', uri))
      const request = asRequest((await core.next()).message)
      assert.equal(request.uri, uri)
      core.send(coreAnswer(request, 200), edge.bridge.local.port)
      assert.equal(asResponse(await alice.next()).status, 200)
    }
    alice.send(alice.request('OPTIONS', `sip:127.0.0.1:${edge.bridge.local.port}`))
    assert.equal(asResponse(await alice.next()).status, 200, 'the edge\'s own address facing the core: for the edge')
  })

  test(`a request over ${UDP_LIMIT} bytes goes to the core over TCP`, async () => {
    alice.send(alice.request('MESSAGE', 'sip:phone@core.example', { body: 'x'.repeat(UDP_LIMIT) }))
    const { message, transport } = await core.next()
    assert.equal(transport, 'tcp')
    assert.equal(topVia(message)?.protocol, 'SIP/2.0/TCP')
    assert.equal(message.getAll('via').flatMap(splitList).length, 2, 'the UDP Via was replaced, not stacked')
    core.send(coreAnswer(asRequest(message), 200), edge.bridge.local.port)
    assert.equal(asResponse(await alice.next()).status, 200)
  })

  test('a CANCEL goes to the core the way its INVITE went: over TCP for an INVITE too big for UDP (RFC 3261 §9.1)', async () => {
    const invite = alice.request('INVITE', 'sip:phone@core.example', { branch: 'z9hG4bKbig', body: 'x'.repeat(UDP_LIMIT), callId: 'big-1' })
    alice.send(invite)
    const sent = await core.next()
    assert.equal(sent.transport, 'tcp')
    alice.send(alice.request('CANCEL', 'sip:phone@core.example', { branch: 'z9hG4bKbig', callId: 'big-1' }))
    const cancel = await core.next()
    assert.equal(cancel.transport, 'tcp')
    assert.equal(topVia(cancel.message)?.params.get('branch'), topVia(sent.message)?.params.get('branch'))
    core.send(coreAnswer(asRequest(cancel.message), 200), edge.bridge.local.port)
    core.send(coreAnswer(asRequest(sent.message), 487, {}, 'Request Terminated'), edge.bridge.local.port)
    assert.deepEqual([asResponse(await alice.next()).status, asResponse(await alice.next()).status], [200, 487])
  })

  test('a client\'s 100 Trying to the core stops at the edge (it sent its own); its other answers go back by Via', async () => {
    const token = edge.tokens.make(alice.idIn(edge.app))
    core.send(core.request('INVITE', alice.contact, { route: `<sip:${token}@127.0.0.1:${edge.bridge.local.port};lr>` }), edge.bridge.local.port)
    assert.equal(asResponse((await core.next()).message).status, 100, 'the edge\'s own 100')
    const invite = asRequest(await alice.next())
    alice.send(alice.answer(invite, 100, 'Trying'))
    alice.send(alice.answer(invite, 603, 'Decline'))
    assert.equal(asResponse((await core.next()).message).status, 603)
    assert.equal((await within(logged.next('sip: 100 Trying absorbed'), 3000, () => 'the log line')).direction, 'from-core')
  })

  test('what the core sends that is not for the edge is dropped, with the reason', async () => {
    const port = edge.bridge.local.port
    const dropped = async (reason: RegExp): Promise<void> => {
      await within(logged.next('sip: message dropped', (e) => e.direction === 'from-core' && reason.test(String(e.reason))), 3000, () => `a drop: ${String(reason)}`)
    }
    core.send('garbage\r\n\r\n', port)
    await dropped(/^unparsable: bad start line: "garbage"/)
    core.send('SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKx\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c1\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n', port)
    await dropped(/^not a response to a request of the edge's$/)
    core.send('SIP/2.0 4294967301 better not break the receiver\r\nVia: SIP/2.0/UDP 127.0.0.1:1\r\n\r\n', port)
    await dropped(/^unparsable: bad start line: "SIP\/2.0 4294967301/)
    core.send(core.request('MESSAGE', 'sip:alice@example.test').replace('CSeq: 1 MESSAGE', 'CSeq: 1 INVITE'), port)
    // From the core, an invalid request is dropped, not answered.
    await dropped(/^invalid: CSeq method does not match the request$/)
    assert.equal(core.pending, 0)
  })
})

describe('the bridge behind a NAT or a relay: the address it advertises (SIP_ADVERTISE)', () => {
  const logged = recordedLog()
  let core: RawCore
  let edge: BridgeEdge

  before(reportedSetUp(async () => {
    core = await RawCore.start()
    edge = await bridgeEdge(core, logged.log, { advertise: { host: '192.0.2.10', port: 6070 } })
  }))
  after(async () => {
    await edge?.close()
    await core?.close()
    assertEveryDropExplained(logged.entries)
  })

  test('goes in its Via, Path and Record-Route; a route naming it is the edge\'s own', async () => {
    const carol = await edge.client('carol')
    carol.send(carol.request('REGISTER', 'sip:example.test', { to: 'sip:carol@example.test' }))
    const register = asRequest((await core.next()).message)
    assert.match(register.get('path') ?? '', /^<sip:[A-Za-z0-9_-]{24}@192\.0\.2\.10:6070;lr;ob>$/)
    assert.equal(`${topVia(register)?.host ?? ''}:${topVia(register)?.port ?? ''}`, '192.0.2.10:6070')
    core.send(coreAnswer(register, 200), edge.bridge.local.port)
    asResponse(await carol.next())
    const token = edge.tokens.make(carol.idIn(edge.app))
    core.send(core.request('MESSAGE', carol.contact, { route: `<sip:${token}@192.0.2.10:6070;lr>` }), edge.bridge.local.port)
    assert.equal(asRequest(await carol.next()).has('route'), false)
    carol.send(carol.request('INVITE', 'sip:phone@core.example'))
    const invite = asRequest((await core.next()).message)
    assert.match(invite.getAll('record-route').flatMap(splitList)[0], /@192\.0\.2\.10:6070;lr;r2=on>$/)
  })
})
