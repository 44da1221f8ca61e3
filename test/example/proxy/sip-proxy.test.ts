import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import IORedis from 'ioredis'
import { ClusterLocations } from '../../../example/cluster/locations'
import { RedisBindings } from '../../../example/cluster/redis-bindings'
import { ProxyVia } from '../../../example/proxy/proxy-via'
import { Registrar } from '../../../example/proxy/registrar'
import { SERVER_NAME, SipProxy } from '../../../example/proxy/sip-proxy'
import { splitList } from '../../../example/sip/headers'
import { SipRequest, SipResponse, type SipMessage } from '../../../example/sip/message'
import { parseSip } from '../../../example/sip/parse'
import { parseUri } from '../../../example/sip/uri'
import { assertEveryDropExplained } from '../../helpers/drops'
import { recordedLog } from '../../helpers/log'
import { within } from '../../helpers/pool'
import { startRedis, type RedisServer } from '../../helpers/redis'
import { reportedSetUp } from '../../helpers/set-up'
import { startSipApp, type SipApp } from '../../helpers/sip-app'

function asResponse (message: SipMessage): SipResponse {
  assert.ok(message instanceof SipResponse, `expected a response, got ${message.toString().split('\r\n')[0]}`)
  return message
}

function asRequest (message: SipMessage): SipRequest {
  assert.ok(message instanceof SipRequest, `expected a request, got ${message.toString().split('\r\n')[0]}`)
  return message
}

describe('the proxy alone: its own answers, REGISTER, relaying and responses by Via', () => {
  let edge: SipApp
  let registrar: Registrar
  const { log, next, entries } = recordedLog()
  const refused = async (status: number, callId?: string): Promise<Record<string, unknown>> => await within(next('sip: request refused', (e) => e.answer === status && (callId === undefined || e.callId === callId)), 3000, () => `the ${status} log line`)

  before(reportedSetUp(async () => {
    edge = await startSipApp((app, connections) => {
      registrar = new Registrar()
      return new SipProxy({ send: (id, data) => app.wsSend(id, data), log, registrar, via: new ProxyVia(randomBytes(32)), connections, core: null, locations: null })
    })
  }))
  after(async () => {
    await edge?.close()
    assertEveryDropExplained(entries)
  })

  test('for the edge itself: OPTIONS 200 with Allow, Accept, Supported: path and Server; a method it knows 405, one it does not 501', async () => {
    const alice = await edge.client('alice')
    alice.send(alice.request('OPTIONS', 'sip:127.0.0.1'))
    const ok = asResponse(await alice.next())
    assert.equal(ok.status, 200)
    assert.match(ok.get('allow') ?? '', /^INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, REGISTER/)
    assert.equal(ok.get('accept'), 'text/plain, application/sdp')
    assert.equal(ok.get('supported'), 'path')
    assert.equal(ok.get('server'), SERVER_NAME)
    alice.send(alice.request('MESSAGE', 'sip:127.0.0.1'))
    const notAllowed = asResponse(await alice.next())
    assert.equal(notAllowed.status, 405)
    assert.equal(notAllowed.get('allow'), 'OPTIONS, REGISTER')
    alice.send(alice.request('RE%47IST%45R', 'sip:registrar.example.com'))
    assert.equal(asResponse(await alice.next()).status, 501, 'RE%47IST%45R is not REGISTER (RFC 4475 §3.1.1.5)')
    const line = await refused(501)
    assert.deepEqual([line.direction, line.method, typeof line.callId], ['from-ws', 'RE%47IST%45R', 'string'])
  })

  test('an ACK is never answered: one for nobody is dropped with the reason', async () => {
    const alice = await edge.client('alice')
    alice.send(alice.request('ACK', 'sip:nobody@example.test'))
    alice.send(alice.request('OPTIONS', 'sip:127.0.0.1'))
    assert.equal(asResponse(await alice.next()).status, 200, 'the next thing alice gets answers what she sent after the ACK')
    assert.equal((await within(next('sip: message dropped', (e) => e.method === 'ACK'), 3000, () => 'the log line')).reason, 'nobody registered as nobody')
  })

  test('the ACK for a refused INVITE stops at the edge', async () => {
    const alice = await edge.client('alice')
    const invite = alice.request('INVITE', 'sip:nobody@example.test', { branch: 'z9hG4bKnobody' })
    alice.send(invite)
    const notFound = asResponse(await alice.next())
    assert.equal(notFound.status, 404)
    alice.send(invite.replace(/^INVITE/, 'ACK').replace('CSeq: 1 INVITE', 'CSeq: 1 ACK').replace(/To: <([^>]*)>/, `To: ${notFound.get('to') ?? ''}`))
    assert.equal((await within(next('sip: ACK for an answer of the edge\'s own absorbed'), 3000, () => 'the log line')).method, 'ACK')
  })

  test('what cannot be read: 400 naming the problem, addressed with what was read; a blank message: nothing; a broken response: dropped', async () => {
    const alice = await edge.client('alice')
    alice.send('\r\n\r\n')
    alice.send('SIP/2.0 200 OK\r\nVia: SIP/2.0/WS x\r\n')
    alice.send('INVITE sip:bob@example.test; lr SIP/2.0\r\nVia: SIP/2.0/WS a.invalid;branch=z9hG4bKlws\r\nCall-ID: lws1\r\nCSeq: 1 INVITE\r\n\r\n')
    const bad = asResponse(await alice.next())
    assert.equal(bad.status, 400)
    assert.equal(bad.get('warning'), '399 - "bad start line:  INVITE sip:bob@example.test; lr SIP/2.0 "')
    assert.equal(bad.get('call-id'), 'lws1', 'what was read of the request addresses the 400 (RFC 4475 §3.1.2.8)')
    assert.equal(bad.get('server'), SERVER_NAME)
    alice.send('{"jsonrpc":"2.0"}\r\n\r\n')
    assert.equal(asResponse(await alice.next()).status, 400)
    alice.send('OPTIONS sip:bob@example.test SIP/7.0\r\nVia: SIP/7.0/WS a.invalid\r\nCSeq: 1 OPTIONS\r\n\r\n')
    const version = asResponse(await alice.next())
    assert.deepEqual([version.status, version.reason], [505, 'Version Not Supported'])
    assert.match(String((await within(next('sip: message dropped', (e) => e.direction === 'from-ws' && String(e.reason).startsWith('unparsable response')), 3000, () => 'the log line')).reason), /no empty line after the headers/)
    assert.equal((await within(next('sip: blank message absorbed'), 3000, () => 'the log line')).bytes, 4)
  })

  test('a request that fails the checks: 400 naming the problem, logged with its Call-ID; a tel: Request-URI: 416; Proxy-Require: 420', async () => {
    const alice = await edge.client('alice')
    alice.send(alice.request('MESSAGE', 'sip:bob@example.test', { headers: { CSeq: '1 INVITE' }, callId: 'mismatch-1' }))
    const bad = asResponse(await alice.next())
    assert.equal(bad.status, 400)
    assert.equal(bad.get('warning'), '399 - "CSeq method does not match the request"')
    const line = await refused(400, 'mismatch-1')
    assert.deepEqual([line.reason, line.callId, line.method, line.direction], ['CSeq method does not match the request', 'mismatch-1', 'MESSAGE', 'from-ws'])
    alice.send(alice.request('MESSAGE', 'tel:+15551234', { to: 'sip:bob@example.test' }))
    assert.equal(asResponse(await alice.next()).status, 416)
    alice.send(alice.request('OPTIONS', 'sip:bob@example.test', { headers: { 'Proxy-Require': 'noProxiesSupportThis' } }))
    const extension = asResponse(await alice.next())
    assert.equal(extension.status, 420)
    assert.equal(extension.get('unsupported'), 'noProxiesSupportThis')
  })

  test('REGISTER is answered by the registrar; a request for the user reaches its connection; the answer goes back by Via', async () => {
    const alice = await edge.client('alice')
    const bob = await edge.client('bob')
    const registered = asResponse(await bob.register())
    assert.equal(registered.status, 200)
    assert.match(registered.get('contact') ?? '', new RegExp(`^<${bob.contact}>;expires=600$`))
    alice.send(alice.request('MESSAGE', 'sip:bob@example.test', { body: 'hi' }))
    const relayed = asRequest(await bob.next())
    assert.equal(relayed.uri, bob.contact)
    assert.equal(relayed.body.toString(), 'hi')
    assert.equal(relayed.getAll('via').flatMap(splitList).length, 2)
    bob.send(bob.answer(relayed, 200, 'OK'))
    const ok = asResponse(await alice.next())
    assert.equal(ok.status, 200)
    assert.deepEqual(ok.getAll('via').flatMap(splitList).map((v) => v.split(';')[0]), [`SIP/2.0/WS ${alice.host}`], 'only alice\'s own Via left')
  })

  test('in a binary WebSocket message too (RFC 7118 §5.1); a body that is not UTF-8 goes on in a binary one', async () => {
    const alice = await edge.client('alice')
    const bob = await edge.client('bob')
    await bob.register()
    const body = Buffer.from([0x30, 0x82, 0x01, 0x52, 0xff, 0xfe])
    const head = alice.request('MESSAGE', 'sip:bob@example.test', { headers: { 'Content-Type': 'application/octet-stream' }, body: 'xxxxxx' }).replace(/xxxxxx$/, '')
    alice.send(Buffer.concat([Buffer.from(head), body]))
    const { data, binary } = await bob.nextRaw()
    assert.equal(binary, true)
    assert.deepEqual(parseSip(data).body, body)
    alice.send(Buffer.from(alice.request('MESSAGE', 'sip:bob@example.test', { body: 'text in binary' })))
    const text = await bob.nextRaw()
    assert.equal(text.binary, false, 'valid UTF-8 goes on as text')
    assert.equal(parseSip(text.raw).body.toString(), 'text in binary')
  })

  test('Route processing (RFC 3261 §16.4): the edge\'s own route goes; one to elsewhere, with no core to follow it: 404', async () => {
    const alice = await edge.client('alice')
    const bob = await edge.client('bob')
    await bob.register()
    const own = `<sip:127.0.0.1:${edge.port};transport=ws;lr>`
    alice.send(alice.request('MESSAGE', 'sip:bob@example.test', { headers: { Route: own } }))
    assert.equal(asRequest(await bob.next()).has('route'), false)
    alice.send(alice.request('MESSAGE', 'sip:bob@example.test', { headers: { Route: `${own}, <sip:elsewhere.example;lr>` }, callId: 'elsewhere-1' }))
    assert.equal(asResponse(await alice.next()).status, 404)
    assert.equal((await refused(404, 'elsewhere-1')).reason, 'a Route to elsewhere, and no core to send it to')
  })

  test('a response with no Via of ours, or a forged one, is dropped and logged', async () => {
    const alice = await edge.client('alice')
    const bob = await edge.client('bob')
    await bob.register()
    alice.send(alice.request('MESSAGE', 'sip:bob@example.test'))
    const relayed = asRequest(await bob.next())
    bob.send(bob.answer(parseSip(alice.request('MESSAGE', 'sip:bob@example.test')), 200, 'OK'))
    assert.equal((await within(next('sip: message dropped', (e) => e.reason === 'no Via of the edge\'s on top'), 3000, () => 'the log line')).status, 200)
    bob.send(bob.answer(relayed, 200, 'OK').replace(/;cid=(\d+)/, (_m, id: string) => `;cid=${Number(id) + 1}`))
    const forged = await within(next('sip: message dropped', (e) => e.reason === 'forged or damaged Via'), 3000, () => 'the log line')
    assert.equal(forged.level, 40, 'at warn')
  })

  test('a closed connection takes its bindings, logged with the AORs', async () => {
    const carol = await edge.client('carol')
    await carol.register()
    assert.equal(registrar.bindings('carol').length, 1)
    await carol.close()
    assert.deepEqual((await within(next('sip: bindings dropped with their connection'), 3000, () => 'the log line')).aors, ['carol'])
    assert.equal(registrar.bindings('carol').length, 0)
    assert.equal(edge.connections.size, edge.app.wsDump().connections.length, 'the proxy forgot the connection')
  })
})

describe('the proxy in a cluster: a REGISTER is answered once Redis holds its bindings', () => {
  let redis: RedisServer
  let client: IORedis
  let edge: SipApp
  const { log, entries } = recordedLog('info')

  before(reportedSetUp(async () => {
    redis = await startRedis()
    client = new IORedis(redis.url)
    edge = await startSipApp((app, connections) => {
      const locations = new ClusterLocations(new RedisBindings(client, 'sipws', app.wsCluster.instance), app.wsCluster, connections, log)
      const registrar = new Registrar(32, Date.now, locations)
      return new SipProxy({ send: (id, data) => app.wsSend(id, data), log, registrar, via: new ProxyVia(randomBytes(32)), connections, core: null, locations })
    }, { cluster: { redis: redis.url } })
  }))
  after(async () => {
    await edge?.close()
    client?.disconnect()
    await redis?.stop()
    assertEveryDropExplained(entries)
  })

  test('when the 200 arrives, another node finds the binding; when the connection closes, its record goes', async () => {
    const dave = await edge.client('dave')
    const other = new RedisBindings(client, 'sipws', 'another-node')
    assert.equal(asResponse(await dave.register()).status, 200)
    const found = await other.find(parseUri('sip:dave@example.test') ?? assert.fail())
    assert.ok(found !== null && 'node' in found)
    assert.equal(found?.connectionId, dave.idIn(edge.app))
    assert.equal(found?.local?.localPort, edge.port)
    await dave.close()
  })
})
