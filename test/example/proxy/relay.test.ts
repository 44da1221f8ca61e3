import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import dgram from 'node:dgram'
import { once } from 'node:events'
import { after, before, describe, test } from 'node:test'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import IORedis from 'ioredis'
import { ClusterLocations } from '../../../example/cluster/locations'
import { RedisBindings } from '../../../example/cluster/redis-bindings'
import { CoreBridge } from '../../../example/core/bridge'
import type { ConnectionLocal } from '../../../example/proxy/connection-local'
import { ProxyVia } from '../../../example/proxy/proxy-via'
import { register } from '../../../example/proxy/register'
import { Registrar } from '../../../example/proxy/registrar'
import { Relay, type CoreSide, type Locations } from '../../../example/proxy/relay'
import { splitList } from '../../../example/sip/headers'
import { SipRequest, SipResponse, type SipMessage } from '../../../example/sip/message'
import { parseSip } from '../../../example/sip/parse'
import { localResponse } from '../../../example/sip/reply'
import { factsOf, Outcomes } from '../../../example/proxy/outcome'
import { parseUri } from '../../../example/sip/uri'
import { topVia } from '../../../example/sip/via'
import { RawSipClient } from '../../e2e/helpers'
import { assertEveryDropExplained } from '../../helpers/drops'
import { recordedLog } from '../../helpers/log'
import { until, within } from '../../helpers/pool'
import { startRedis, type RedisServer } from '../../helpers/redis'
import { startApp, type Started } from '../../helpers/server'
import { reportedSetUp } from '../../helpers/set-up'
import { startSipApp, type SipApp } from '../../helpers/sip-app'

const asRequest = (message: SipMessage): SipRequest => { assert.ok(message instanceof SipRequest, message.toString().split('\r\n')[0]); return message }
const asResponse = (message: SipMessage): SipResponse => { assert.ok(message instanceof SipResponse, message.toString().split('\r\n')[0]); return message }

interface Parts { registrar: Registrar, via: ProxyVia, core: CoreSide | null, locations: Locations | null }

/**
 * A server whose clients' REGISTERs are answered by the registrar (alone) and whose other requests go
 * through the Relay under test, answered as the proxy answers.
 */
async function relayEdge (log: FastifyBaseLogger, parts: (app: FastifyInstance, connections: Map<number, ConnectionLocal>) => Parts, options = {}): Promise<SipApp & { parts: Parts }> {
  let made: Parts | undefined
  const edge = await startSipApp((app, connections) => {
    made = parts(app, connections)
    const { registrar, via, core, locations } = made
    const outcomes = new Outcomes(log)
    const reply = (id: number, request: SipRequest, status: number, reason: string, why: string, extra?: Array<[string, string]>): void => {
      if (request.method === 'ACK') outcomes.dropped(why, factsOf(request, 'from-ws', { id }))
      else app.wsSend(id, localResponse(request, status, reason, 'relay test', extra, why).payload())
    }
    const relay = new Relay({ send: (id, data) => app.wsSend(id, data), reply, outcomes, log, registrar, connections, via, core, locations })
    return {
      message: (id, data) => {
        const request = parseSip(data)
        if (request.kind === 'response') return
        if (request.method === 'REGISTER' && core === null) {
          const answer = register(registrar, log, 600, id, request)
          reply(id, request, answer.status, answer.reason, '', answer.extra)
          return
        }
        return relay.relay(id, request, parseUri(request.uri) ?? assert.fail(request.uri))
      }
    }
  }, options)
  return { ...edge, parts: made ?? assert.fail('the parts were not made') }
}

describe('relaying alone: to the newest binding of this node, else 404', () => {
  const { log, next, entries } = recordedLog()
  let edge: SipApp & { parts: Parts }
  let alice: RawSipClient
  let bob: RawSipClient

  before(reportedSetUp(async () => {
    edge = await relayEdge(log, () => ({ registrar: new Registrar(), via: new ProxyVia(randomBytes(32)), core: null, locations: null }))
    alice = await edge.client('alice')
    bob = await edge.client('bob')
    assert.equal(asResponse(await bob.register()).status, 200)
  }))
  after(async () => {
    await edge?.close()
    assertEveryDropExplained(entries)
  })

  test('retargeted to the contact, one hop less, with a Via sent by the target\'s local side naming the source', async () => {
    alice.send(alice.request('MESSAGE', 'sip:bob@example.test', { headers: { 'Max-Forwards': '10' } }))
    const relayed = asRequest(await bob.next())
    assert.equal(relayed.uri, bob.contact)
    assert.equal(relayed.get('max-forwards'), '9')
    const via = topVia(relayed)
    assert.equal(via?.protocol, 'SIP/2.0/WS')
    assert.equal(`${via?.host ?? ''}:${via?.port ?? ''}`, `127.0.0.1:${edge.port}`)
    assert.equal(via?.params.get('cid'), String(alice.idIn(edge.app)))
    assert.equal((await within(next('sip: relayed request'), 3000, () => 'the log line')).aor, 'bob')
  })

  test('nobody registered: 404 naming who (an ACK: nothing); Max-Forwards 0: 483', async () => {
    alice.send(alice.request('ACK', 'sip:nobody@example.test'))
    alice.send(alice.request('MESSAGE', 'sip:nobody@example.test'))
    const notFound = asResponse(await alice.next())
    assert.equal(notFound.status, 404)
    assert.equal(notFound.get('warning'), '399 - "nobody registered as nobody"')
    alice.send(alice.request('MESSAGE', 'sip:bob@example.test', { headers: { 'Max-Forwards': '0' } }))
    assert.equal(asResponse(await alice.next()).status, 483)
  })

  test('a binding whose connection is gone is not used: 404', async () => {
    const carol = await edge.client('carol')
    await carol.register()
    const id = carol.idIn(edge.app)
    await carol.close()
    await until(() => !edge.connections.has(id), 3000, () => 'carol\'s connection to be forgotten')
    assert.equal(edge.parts.registrar.lookup('carol')?.connectionId, id, 'the binding is still there (no proxy dropped it)')
    alice.send(alice.request('MESSAGE', 'sip:carol@example.test'))
    assert.equal(asResponse(await alice.next()).status, 404)
  })
})

describe('relaying with a core: REGISTER, routed requests and requests for nobody go to the core', () => {
  const { log } = recordedLog('warn')
  let edge: SipApp & { parts: Parts }
  let core: dgram.Socket
  let bridge: CoreBridge

  before(reportedSetUp(async () => {
    core = dgram.createSocket('udp4')
    core.bind(0, '127.0.0.1')
    await once(core, 'listening')
    edge = await relayEdge(log, (app, connections) => {
      const registrar = new Registrar()
      const via = new ProxyVia(randomBytes(32))
      bridge = new CoreBridge({
        core: { transport: 'udp', host: '127.0.0.1', port: core.address().port },
        listen: { transport: 'udp', host: '127.0.0.1', port: 0 },
        via, tokenKey: randomBytes(32), registrar, connections, sendWs: (id, text) => app.wsSend(id, text), log, serverName: 'relay test', remote: null
      })
      return { registrar, via, core: bridge, locations: null }
    })
    await bridge.start()
  }))
  after(async () => {
    await bridge?.close()
    await edge?.close()
    core?.close()
  })

  async function atCore (send: () => void): Promise<SipRequest> {
    const arrived = once(core, 'message') as Promise<[Buffer]>
    send()
    const [data] = await within(arrived, 3000, () => 'a request at the core')
    return asRequest(parseSip(data))
  }

  test('REGISTER goes to the core with a Path', async () => {
    const alice = await edge.client('alice')
    const request = await atCore(() => { alice.send(alice.request('REGISTER', 'sip:example.test', { to: 'sip:alice@example.test' })) })
    assert.match(request.get('path') ?? '', /^<sip:[A-Za-z0-9_-]{24}@127\.0\.0\.1:\d+;lr;ob>$/)
  })

  test('a request with a Route follows it to the core, even for a user registered here', async () => {
    const alice = await edge.client('alice')
    const request = await atCore(() => {
      alice.send(alice.request('BYE', 'sip:bob@phone.example', { headers: { Route: '<sip:core.example;lr>' } }))
    })
    assert.deepEqual(request.getAll('route').flatMap(splitList), ['<sip:core.example;lr>'])
  })

  test('a request for nobody registered here goes to the core', async () => {
    const alice = await edge.client('alice')
    const request = await atCore(() => { alice.send(alice.request('MESSAGE', 'sip:nobody@example.test', { body: 'hello' })) })
    assert.equal(request.uri, 'sip:nobody@example.test')
    assert.equal(request.body.toString(), 'hello')
  })
})

describe('relaying in a cluster: a binding on another node, and Redis away', () => {
  const { log, next } = recordedLog()
  let redis: RedisServer
  let client: IORedis
  let nodeA: SipApp & { parts: Parts }
  let nodeB: Started

  before(reportedSetUp(async () => {
    redis = await startRedis()
    client = new IORedis(redis.url)
    nodeB = await startApp({ subProtocols: ['sip'], cluster: { redis: redis.url } })
    nodeA = await relayEdge(log, (app, connections) => {
      const locations = new ClusterLocations(new RedisBindings(client, 'sipws', app.wsCluster.instance), app.wsCluster, connections, log)
      return { registrar: new Registrar(32, Date.now, locations), via: new ProxyVia(randomBytes(32)), core: null, locations }
    }, { cluster: { redis: redis.url } })
    await until(() => nodeA.app.wsCluster.nodes().some((n) => n.instance === nodeB.app.wsCluster.instance), 10_000, () => 'node A to hear node B')
  }))
  after(async () => {
    await nodeA?.close()
    await nodeB?.app.close()
    client?.disconnect()
    await redis?.stop()
  })

  test('sent to the connection on its node with a confirmed send; once that connection is gone, 480 and the binding forgotten', async () => {
    const bob = await RawSipClient.connect(nodeB.url, 'bob')
    const bobId = bob.idIn(nodeB.app)
    const bindings = new RedisBindings(client, 'sipws', nodeB.app.wsCluster.instance)
    const contact = parseUri(bob.contact) ?? assert.fail()
    await bindings.put({ aor: 'bob', connectionId: bobId, uri: bob.contact, parsed: contact, params: new Map(), expiresAt: Date.now() + 60_000 }, { localAddress: '127.0.0.1', localPort: nodeB.port })
    const alice = await nodeA.client('alice')
    alice.send(alice.request('MESSAGE', 'sip:bob@example.test', { body: 'across' }))
    const relayed = asRequest(await bob.next())
    assert.equal(relayed.body.toString(), 'across')
    assert.equal(topVia(relayed)?.port, nodeB.port, 'the Via is sent by bob\'s connection\'s local side, as recorded')
    assert.equal((await within(next('sip cluster: relayed request'), 3000, () => 'the log line')).node, nodeB.app.wsCluster.instance)
    await bob.close()
    await until(() => nodeB.app.wsDump().connections.length === 0, 3000, () => 'bob\'s connection to close on node B')
    alice.send(alice.request('MESSAGE', 'sip:bob@example.test'))
    const unavailable = asResponse(await alice.next())
    assert.equal(unavailable.status, 480)
    assert.equal(unavailable.getAll('via').length, 1, 'the 480 went by alice\'s own Via')
    await until(async () => await bindings.find(contact) === null, 3000, () => 'the stale binding to be forgotten')
  })

  test('a user registered nowhere: 404, after the lookup', async () => {
    const alice = await nodeA.client('alice')
    alice.send(alice.request('MESSAGE', 'sip:nobody@example.test'))
    assert.equal(asResponse(await alice.next()).status, 404)
  })

  test('Redis cannot be asked: 480, and the lookup failure logged', async () => {
    const away = new IORedis(redis.url, { lazyConnect: true, enableOfflineQueue: false })
    const { log: awayLog, next: awayNext } = recordedLog()
    const edge = await relayEdge(awayLog, (app, connections) => {
      const locations = new ClusterLocations(new RedisBindings(away, 'sipws', app.wsCluster.instance), app.wsCluster, connections, awayLog)
      return { registrar: new Registrar(), via: new ProxyVia(randomBytes(32)), core: null, locations }
    }, { cluster: { redis: redis.url } })
    try {
      const alice = await edge.client('alice')
      alice.send(alice.request('MESSAGE', 'sip:bob@example.test'))
      assert.equal(asResponse(await alice.next()).status, 480)
      assert.equal((await within(awayNext('sip cluster: lookup failed'), 3000, () => 'the log line')).user, 'bob')
    } finally {
      await edge.close()
      away.disconnect()
    }
  })
})
