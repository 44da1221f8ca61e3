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
import { parseSip, SipRequest, SipResponse, type SipMessage } from '../../../example/sip/message'
import { parseUri } from '../../../example/sip/uri'
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
  const { log, next } = recordedLog()

  before(reportedSetUp(async () => {
    edge = await startSipApp((app, connections) => {
      registrar = new Registrar()
      return new SipProxy({ send: (id, text) => app.wsSend(id, text), log, registrar, via: new ProxyVia(randomBytes(32)), connections, core: null, locations: null })
    })
  }))
  after(async () => { await edge?.close() })

  test('OPTIONS to the proxy itself: 200 with Allow, Accept, Supported: path and Server; another method for it: 404', async () => {
    const alice = await edge.client('alice')
    alice.send(alice.request('OPTIONS', 'sip:127.0.0.1'))
    const ok = asResponse(await alice.next())
    assert.equal(ok.status, 200)
    assert.match(ok.get('allow') ?? '', /^INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, REGISTER/)
    assert.equal(ok.get('accept'), 'text/plain, application/sdp')
    assert.equal(ok.get('supported'), 'path')
    assert.equal(ok.get('server'), SERVER_NAME)
    // An ACK is never answered: the next thing alice gets is the answer to what she sent after it.
    alice.send(alice.request('ACK', 'sip:127.0.0.1'))
    alice.send(alice.request('MESSAGE', 'sip:127.0.0.1'))
    assert.equal(asResponse(await alice.next()).status, 404)
  })

  test('unparsable: 400 with the problem in a Warning; blank: nothing; a broken response: dropped, logged', async () => {
    const alice = await edge.client('alice')
    alice.send('\r\n\r\n')
    alice.send('SIP/2.0 200 OK\r\nVia: SIP/2.0/WS x\r\n')
    alice.send('hello "world"')
    const bad = asResponse(await alice.next())
    assert.equal(bad.status, 400)
    assert.equal(bad.get('warning'), '399 - "no empty line after the headers"')
    assert.equal(bad.get('server'), SERVER_NAME)
    assert.deepEqual((await within(next('sip: unparsable response dropped'), 3000, () => 'the log line')).problem, 'no empty line after the headers')
    assert.equal((await within(next('sip: unparsable message'), 3000, () => 'the log line')).bytes, 13)
  })

  test('a request that fails validation: 400 naming the problem; a tel: Request-URI: 416', async () => {
    const alice = await edge.client('alice')
    alice.send(alice.request('MESSAGE', 'sip:bob@example.test', { headers: { CSeq: '1 INVITE' } }))
    const bad = asResponse(await alice.next())
    assert.equal(bad.status, 400)
    assert.equal(bad.get('warning'), '399 - "CSeq method does not match the request"')
    assert.equal((await within(next('sip: bad request'), 3000, () => 'the log line')).problem, 'CSeq method does not match the request')
    alice.send(alice.request('MESSAGE', 'tel:+15551234', { to: 'sip:bob@example.test' }))
    assert.equal(asResponse(await alice.next()).status, 416)
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
    assert.equal(relayed.body, 'hi')
    assert.equal(relayed.getAll('via').flatMap(splitList).length, 2)
    bob.send(bob.answer(relayed, 200, 'OK'))
    const ok = asResponse(await alice.next())
    assert.equal(ok.status, 200)
    assert.deepEqual(ok.getAll('via').flatMap(splitList).map((v) => v.split(';')[0]), [`SIP/2.0/WS ${alice.host}`], 'only alice\'s own Via left')
  })

  test('a response with no Via of ours, or a forged one, is dropped and logged', async () => {
    const alice = await edge.client('alice')
    const bob = await edge.client('bob')
    await bob.register()
    alice.send(alice.request('MESSAGE', 'sip:bob@example.test'))
    const relayed = asRequest(await bob.next())
    bob.send(bob.answer(parseSip(alice.request('MESSAGE', 'sip:bob@example.test')), 200, 'OK'))
    assert.equal((await within(next('sip: response with no Via of ours dropped'), 3000, () => 'the log line')).status, 200)
    bob.send(bob.answer(relayed, 200, 'OK').replace(/;cid=(\d+)/, (_m, id: string) => `;cid=${Number(id) + 1}`))
    assert.equal((await within(next('sip: response with a forged or damaged Via dropped'), 3000, () => 'the log line')).status, 200)
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

  before(reportedSetUp(async () => {
    redis = await startRedis()
    client = new IORedis(redis.url)
    const { log } = recordedLog('warn')
    edge = await startSipApp((app, connections) => {
      const locations = new ClusterLocations(new RedisBindings(client, 'sipws', app.wsCluster.instance), app.wsCluster, connections, log)
      const registrar = new Registrar(32, Date.now, locations)
      return new SipProxy({ send: (id, text) => app.wsSend(id, text), log, registrar, via: new ProxyVia(randomBytes(32)), connections, core: null, locations })
    }, { cluster: { redis: redis.url } })
  }))
  after(async () => {
    await edge?.close()
    client?.disconnect()
    await redis?.stop()
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
