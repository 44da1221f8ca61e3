import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, describe, test } from 'node:test'
import { PassThrough } from 'node:stream'
import { WebSocketServer } from 'ws'
import { splitList } from '../../example/sip/headers'
import { parseVia } from '../../example/sip/via'
import { SipRequest, SipResponse, type SipMessage } from '../../example/sip/message'
import { parseSip } from '../../example/sip/parse'
import { handshakeStatus, RawSipClient, startExample, within, type Example } from './helpers'
import { reportedSetUp } from '../helpers/set-up'

function asRequest (message: SipMessage): SipRequest {
  assert.ok(message instanceof SipRequest, `expected a request, got ${message.toString().split('\r\n')[0]}`)
  return message
}

function asResponse (message: SipMessage): SipResponse {
  assert.ok(message instanceof SipResponse, `expected a response, got ${message.toString().split('\r\n')[0]}`)
  return message
}

function vias (message: SipMessage): string[] {
  return message.getAll('via').flatMap(splitList)
}

describe('the xhttp:request gate (Kamailio sample config)', () => {
  let example: Example

  before(reportedSetUp(async () => {
    example = await startExample({ allowedOrigins: ['http://good.example'], allowedHosts: ['127.0.0.1'] })
  }))
  after(async () => { await example.app.close() })

  test('an Origin not on the list gets 403 Forbidden', async () => {
    assert.deepEqual(await handshakeStatus(example.wsUrl, { origin: 'http://evil.example' }), { status: 403, body: 'Forbidden' })
  })

  test('no Origin at all gets 403 once a list is set', async () => {
    assert.equal((await handshakeStatus(example.wsUrl)).status, 403)
  })

  test('a Host not on the list gets 403, even from a good Origin', async () => {
    assert.equal((await handshakeStatus(example.wsUrl, { origin: 'http://good.example', headers: { Host: 'evil.example' } })).status, 403)
  })

  test('a listed Origin and Host get through', async () => {
    assert.equal((await handshakeStatus(example.wsUrl, { origin: 'http://good.example' })).status, 101)
  })

  test('the gate is for upgrades only: the page is served to anyone', async () => {
    const page = await example.app.inject({ method: 'GET', url: '/', headers: { origin: 'http://evil.example' } })
    assert.equal(page.statusCode, 200)
    assert.match(page.headers['content-type'] as string, /^text\/html/)
    assert.match(page.body, /<form id="register-form"/)
  })
})

describe('SIP routing with bare clients', () => {
  let example: Example
  const clients: RawSipClient[] = []

  async function client (user: string): Promise<RawSipClient> {
    const c = await RawSipClient.connect(example.wsUrl, user)
    clients.push(c)
    return c
  }

  async function registered (user: string): Promise<RawSipClient> {
    const c = await client(user)
    const response = asResponse(await c.register())
    assert.equal(response.status, 200)
    return c
  }

  before(reportedSetUp(async () => { example = await startExample() }))
  after(async () => {
    await Promise.all(clients.map(async (c) => { await c.close() }))
    await example.app.close()
  })

  test('OPTIONS to the server itself gets 200 with Allow and a To tag', async () => {
    const a = await client('opt')
    a.send(a.request('OPTIONS', `sip:127.0.0.1:${example.port};transport=ws`))
    const response = asResponse(await a.next())
    assert.equal(response.status, 200)
    assert.match(response.get('allow') ?? '', /MESSAGE/)
    assert.match(response.get('to') ?? '', /;tag=/)
    assert.equal(vias(response).length, 1)
  })

  test('bad input gets 400 (or nothing, for a broken response) and the connection and server carry on', async (t) => {
    const a = await client('fuzz')
    const started = performance.now()
    const cases: Array<[string, string | Buffer, RegExp]> = [
      ['plain text', 'hello there, server', /bad start line/],
      ['JSON', '{"method":"REGISTER"}\r\n\r\n', /bad start line/],
      ['binary garbage', Buffer.from([0xff, 0x00, 0xfe, 0x13, 0x37, 0x0d, 0x0a, 0x0d, 0x0a]), /bad start line/],
      ['a header line without a colon', 'MESSAGE sip:x@y SIP/2.0\r\nthis is not a header\r\n\r\n', /without a colon/],
      ['a body shorter than Content-Length', 'MESSAGE sip:x@y SIP/2.0\r\nContent-Length: 900\r\n\r\nshort', /Content-Length says 900/]
    ]
    for (const [what, input, warning] of cases) {
      a.send(input)
      const reply = await a.nextRaw()
      assert.equal(reply.binary, false, `${what}: the 400 goes as text`)
      const response = asResponse(parseSip(reply.raw))
      assert.equal(response.status, 400, what)
      assert.match(response.get('warning') ?? '', warning, what)
    }
    const missing = [
      ['Call-ID', /missing Call-ID/],
      ['Via', /missing Via/],
      ['CSeq', /missing CSeq/]
    ] as const
    for (const [header, warning] of missing) {
      a.send(a.request('MESSAGE', 'sip:nobody@example.test', { headers: { [header]: '' } }))
      const response = asResponse(await a.next())
      assert.equal(response.status, 400, `without ${header}`)
      assert.match(response.get('warning') ?? '', warning)
    }
    a.send(a.request('MESSAGE', 'sip:nobody@example.test', { headers: { CSeq: '1 INVITE' } }))
    assert.match(asResponse(await a.next()).get('warning') ?? '', /CSeq method/)
    a.send(a.request('MESSAGE', 'sip:nobody@example.test', { headers: { 'Max-Forwards': 'lots' } }))
    assert.equal(asResponse(await a.next()).status, 400)
    a.send(a.request('MESSAGE', 'tel:+15550100'))
    assert.equal(asResponse(await a.next()).status, 416)

    // No answer to these: a broken response, a blank message, an ACK nobody can take.
    a.send('SIP/2.0 200 OK\r\nVia: nonsense\r\n')
    a.send('\r\n\r\n')
    a.send(a.request('ACK', 'sip:nobody@example.test'))
    a.send(a.request('OPTIONS', 'sip:example.test', { callId: 'still-alive' }))
    const alive = asResponse(await a.next())
    assert.equal(alive.get('call-id'), 'still-alive', 'the next thing the client hears is the answer to its OPTIONS')
    assert.equal(alive.status, 200)
    t.diagnostic(`${cases.length + missing.length + 7} bad messages answered in ${(performance.now() - started).toFixed(1)} ms`)

    const fresh = await client('after-fuzz')
    fresh.send(fresh.request('OPTIONS', 'sip:example.test'))
    assert.equal(asResponse(await fresh.next()).status, 200)
  })

  test('REGISTER: Expires header and contact parameter, the cap, query, Contact: *', async () => {
    const a = await client('reg')
    const to = 'sip:reg@example.test'
    a.send(a.request('REGISTER', 'sip:example.test', { to, headers: { Expires: '99999', Contact: `<${a.contact}>` } }))
    let response = asResponse(await a.next())
    assert.equal(response.status, 200)
    assert.equal(response.get('contact'), `<${a.contact}>;expires=3600`, 'a registrar may shorten (RFC 3261 §10.3)')

    a.send(a.request('REGISTER', 'sip:example.test', { to, headers: { Expires: '600', Contact: `<sip:second@${a.host};transport=ws>;expires=60;+sip.instance="<urn:uuid:0c7a>"` } }))
    response = asResponse(await a.next())
    assert.deepEqual(response.getAll('contact'), [`<${a.contact}>;expires=3600`, `<sip:second@${a.host};transport=ws>;+sip.instance="<urn:uuid:0c7a>";expires=60`])

    a.send(a.request('REGISTER', 'sip:example.test', { to, headers: { Contact: '' } }))
    assert.equal(asResponse(await a.next()).getAll('contact').length, 2, 'a REGISTER without Contact lists the bindings')

    a.send(a.request('REGISTER', 'sip:example.test', { to, headers: { Contact: '*' } }))
    assert.equal(asResponse(await a.next()).status, 400, 'Contact: * needs Expires: 0')
    a.send(a.request('REGISTER', 'sip:example.test', { to, headers: { Contact: '*', Expires: '0' } }))
    response = asResponse(await a.next())
    assert.equal(response.status, 200)
    assert.equal(response.has('contact'), false)

    a.send(a.request('REGISTER', 'sip:example.test', { to: 'sip:example.test' }))
    assert.equal(asResponse(await a.next()).status, 400, 'an AOR needs a user')
  })

  test('INVITE, provisional and final responses, ACK and BYE between two registered users', async () => {
    const alice = await registered('alice')
    const bob = await registered('bob')
    const sdp = 'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=ü\r\n'
    alice.send(alice.request('INVITE', 'sip:bob@example.test', { body: sdp, callId: 'call-1', headers: { 'Content-Type': 'application/sdp' } }))
    const invite = asRequest(await bob.next())
    assert.equal(invite.method, 'INVITE')
    assert.equal(invite.uri, bob.contact, 'retargeted to the registered contact')
    assert.equal(invite.body.toString(), sdp)
    assert.equal(invite.get('max-forwards'), '69')
    const [ours, theirs] = vias(invite).map((v) => parseVia(v))
    assert.equal(ours?.params.get('cid'), String(alice.idIn(example.app)))
    assert.match(ours?.params.get('branch') ?? '', /^z9hG4bK/)
    assert.equal(theirs?.host, alice.host)

    bob.send(bob.answer(invite, 180, 'Ringing'))
    const ringing = asResponse(await alice.next())
    assert.equal(ringing.status, 180)
    assert.deepEqual(vias(ringing).map((v) => parseVia(v)?.host), [alice.host], 'the proxy popped its own Via')
    bob.send(bob.answer(invite, 200, 'OK', { Contact: `<${bob.contact}>` }))
    assert.equal(asResponse(await alice.next()).status, 200)

    // In-dialog requests go to the remote target, a Contact URI, not an AOR.
    alice.send(alice.request('ACK', bob.contact, { callId: 'call-1' }))
    const ack = asRequest(await bob.next())
    assert.equal(ack.method, 'ACK')
    bob.send(bob.request('BYE', alice.contact, { callId: 'call-1', cseq: 2 }))
    const bye = asRequest(await alice.next())
    assert.equal(bye.method, 'BYE')
    assert.equal(bye.uri, alice.contact)
    alice.send(alice.answer(bye, 200, 'OK'))
    const byeOk = asResponse(await bob.next())
    assert.equal(byeOk.status, 200)
    assert.equal(byeOk.get('cseq'), '2 BYE')
  })

  test('a CANCEL is relayed with the same branch as the INVITE it cancels (RFC 3261 §16.11)', async () => {
    const carol = await registered('carol')
    const dave = await registered('dave')
    carol.send(carol.request('INVITE', 'sip:dave@example.test', { branch: 'z9hG4bKcancelme', callId: 'call-2' }))
    const invite = asRequest(await dave.next())
    carol.send(carol.request('CANCEL', 'sip:dave@example.test', { branch: 'z9hG4bKcancelme', callId: 'call-2' }))
    const cancel = asRequest(await dave.next())
    assert.equal(cancel.method, 'CANCEL')
    assert.equal(parseVia(vias(cancel)[0])?.params.get('branch'), parseVia(vias(invite)[0])?.params.get('branch'))
  })

  test('Max-Forwards: 0 gets 483; 1 is relayed as 0; a Route naming the proxy is removed; one to elsewhere gets 404 (no core to follow it)', async () => {
    const erin = await registered('erin')
    const frank = await registered('frank')
    erin.send(erin.request('MESSAGE', 'sip:frank@example.test', { headers: { 'Max-Forwards': '0' } }))
    assert.equal(asResponse(await erin.next()).status, 483)
    erin.send(erin.request('MESSAGE', 'sip:frank@example.test', {
      body: 'last hop',
      headers: { 'Max-Forwards': '1', Route: `<sip:127.0.0.1:${example.port};transport=ws;lr>` }
    }))
    const message = asRequest(await frank.next())
    assert.equal(message.get('max-forwards'), '0')
    assert.equal(message.body.toString(), 'last hop')
    assert.equal(message.has('route'), false)
    erin.send(erin.request('MESSAGE', 'sip:frank@example.test', { headers: { Route: `<sip:127.0.0.1:${example.port};transport=ws;lr>, <sip:elsewhere.example;lr>` } }))
    assert.equal(asResponse(await erin.next()).status, 404)
  })

  test('a response with a forged Via is dropped, not steered to the connection it names', async () => {
    const victim = await registered('victim')
    const mallory = await client('mallory')
    mallory.send([
      'SIP/2.0 200 OK',
      `Via: SIP/2.0/WS 127.0.0.1:${example.port};branch=z9hG4bKforged;cid=${victim.idIn(example.app)}`,
      `Via: SIP/2.0/WS ${victim.host};branch=z9hG4bKreal`,
      'From: <sip:x@example.test>;tag=1', 'To: <sip:victim@example.test>;tag=2', 'Call-ID: forged', 'CSeq: 1 MESSAGE',
      'Content-Length: 0', '', ''
    ].join('\r\n'))
    // Messages on one connection are handled in order: once mallory's OPTIONS is answered, her forged
    // response has been dealt with, and had it been relayed the victim would have it queued already.
    mallory.send(mallory.request('OPTIONS', 'sip:example.test'))
    assert.equal(asResponse(await mallory.next()).status, 200)
    victim.send(victim.request('OPTIONS', 'sip:example.test', { callId: 'victim-check' }))
    assert.equal((await victim.next()).get('call-id'), 'victim-check')
  })

  test('a binding goes when its WebSocket closes (no un-REGISTER): 404 after', async () => {
    const gina = await registered('gina')
    const hank = await registered('hank')
    gina.send(gina.request('MESSAGE', 'sip:hank@example.test', { body: 'before' }))
    const message = asRequest(await hank.next())
    hank.send(hank.answer(message, 200, 'OK'))
    assert.equal(asResponse(await gina.next()).status, 200)

    const closed = within(5000, 'websocket:closed', new Promise<void>((resolve) => {
      example.app.addWsHook('websocket:closed', () => { resolve() })
    }))
    await hank.close()
    await closed
    gina.send(gina.request('MESSAGE', 'sip:hank@example.test', { body: 'after' }))
    assert.equal(asResponse(await gina.next()).status, 404)
  })
})

describe('websocket:closed: a log line and an lwsc notify to EVENTS_URL', () => {
  test('each close is logged and sent as JSON to the events URL', async () => {
    const events = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (offered) => offered.has('kmsg') ? 'kmsg' : false })
    await once(events, 'listening')
    const eventsPort = (events.address() as { port: number }).port
    const received: string[] = []
    let wake: (() => void) | null = null
    events.on('connection', (ws) => {
      ws.on('message', (data) => {
        received.push(data.toString())
        wake?.()
      })
    })
    const logs = new PassThrough()
    const lines: Array<Record<string, unknown>> = []
    logs.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>)
    })
    const example = await startExample({ eventsUrl: `ws://127.0.0.1:${eventsPort}/events`, logger: { level: 'info', stream: logs } })
    try {
      const a = await RawSipClient.connect(example.wsUrl, 'leaver')
      const id = a.idIn(example.app)
      const arrived = within(5000, 'the close event at EVENTS_URL', new Promise<void>((resolve) => { wake = resolve }))
      await a.close()
      await arrived
      const event = JSON.parse(received[0]) as Record<string, unknown>
      assert.equal(event.id, id)
      assert.equal(event.by, 'remote')
      assert.equal(event.code, 1000)
      assert.equal(event.subProtocol, 'sip')
      const line = lines.find((l) => l.msg === 'websocket closed')
      assert.ok(line !== undefined, 'a log line for the close')
      assert.equal(line.id, id)
      assert.equal(line.by, 'remote')
    } finally {
      await example.app.close()
      for (const ws of events.clients) ws.terminate()
      await new Promise<void>((resolve) => { events.close(() => { resolve() }) })
    }
  })
})
