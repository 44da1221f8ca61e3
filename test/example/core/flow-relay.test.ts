import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import IORedis from 'ioredis'
import { FlowRelay, type FlowRelayOptions } from '../../../example/core/flow-relay'
import { RedisBindings } from '../../../example/cluster/redis-bindings'
import { splitList } from '../../../example/sip/headers'
import { SipRequest, SipResponse, type SipMessage } from '../../../example/sip/message'
import { parseUri } from '../../../example/sip/uri'
import { topVia } from '../../../example/sip/via'
import { RawSipClient } from '../../e2e/helpers'
import { assertEveryDropExplained } from '../../helpers/drops'
import { recordedLog } from '../../helpers/log'
import { until, within } from '../../helpers/pool'
import { bridgeEdge, RawCore, type BridgeEdge } from '../../helpers/raw-core'
import { startRedis, type RedisServer } from '../../helpers/redis'
import { startApp, type Started } from '../../helpers/server'
import { reportedSetUp } from '../../helpers/set-up'

const asRequest = (message: SipMessage): SipRequest => { assert.ok(message instanceof SipRequest, message.toString().split('\r\n')[0]); return message }
const asResponse = (message: SipMessage): SipResponse => { assert.ok(message instanceof SipResponse, message.toString().split('\r\n')[0]); return message }

describe('requests from the core for the edge\'s flows', () => {
  const logged = recordedLog()
  let core: RawCore
  let edge: BridgeEdge
  let alice: RawSipClient
  let route = ''

  before(reportedSetUp(async () => {
    core = await RawCore.start()
    edge = await bridgeEdge(core, logged.log)
    alice = await edge.client('alice')
    route = `<sip:${edge.tokens.make(alice.idIn(edge.app))}@127.0.0.1:${edge.bridge.local.port};lr>`
  }))
  after(async () => {
    await edge?.close()
    await core?.close()
    assertEveryDropExplained(logged.entries)
  })

  test('to its client with the edge\'s Via and routes; the answer goes back by the core\'s Via; a retransmission gets it again', async () => {
    core.send(core.request('INVITE', alice.contact, { route, branch: 'z9hG4bKcall1' }), edge.bridge.local.port)
    const trying = asResponse((await core.next()).message)
    assert.equal(trying.status, 100)
    const invite = asRequest(await alice.next())
    assert.equal(invite.has('route'), false, 'the token route was the edge\'s')
    assert.equal(topVia(invite)?.params.get('cid'), 'core')
    assert.match(invite.getAll('via').flatMap(splitList)[1], new RegExp(`^SIP/2\\.0/UDP 127\\.0\\.0\\.1:${core.port};branch=z9hG4bKcall1;rport=${core.port}$`), 'the core\'s Via got its rport')
    assert.equal(invite.getAll('record-route').flatMap(splitList)[0], `<sip:127.0.0.1:${edge.port};transport=ws;lr;r2=on>`)
    alice.send(alice.answer(invite, 486, 'Busy Here'))
    const busy = asResponse((await core.next()).message)
    assert.equal(busy.status, 486)
    assert.equal(topVia(busy)?.params.get('branch'), 'z9hG4bKcall1')
    // The core did not hear the 486 and sends the INVITE again: the edge answers it, the client never sees it.
    core.send(core.request('INVITE', alice.contact, { route, branch: 'z9hG4bKcall1' }), edge.bridge.local.port)
    assert.equal(asResponse((await core.next()).message).status, 486)
    assert.equal((await within(logged.next('sip: retransmission absorbed'), 3000, () => 'the log line')).method, 'INVITE')
  })

  test('from a strict-routing core: the Request-URI is the edge\'s route, the client\'s contact comes last in the Route set (RFC 3261 §16.4)', async () => {
    const token = route.slice(1, route.indexOf('>'))
    const strict = core.request('MESSAGE', token, { route: `<sip:next.example>, <${alice.contact}>`, body: 'strictly' }).replace(`To: <${token}>`, `To: <${alice.contact}>`)
    core.send(strict, edge.bridge.local.port)
    const message = asRequest(await alice.next())
    assert.equal(message.uri, alice.contact)
    assert.deepEqual(message.getAll('route').flatMap(splitList), ['<sip:next.example>'])
    assert.equal(message.body.toString(), 'strictly')
    alice.send(alice.answer(message, 200, 'OK'))
    assert.equal(asResponse((await core.next()).message).status, 200)
  })

  test('answered by the edge itself: OPTIONS for it 200, no token 404, a forged token 403, Max-Forwards 0 483; each refusal logged', async () => {
    const port = edge.bridge.local.port
    const cases: Array<[string, number, string | undefined]> = [
      [core.request('OPTIONS', `sip:127.0.0.1:${port}`), 200, undefined],
      [core.request('MESSAGE', 'sip:alice@example.test'), 404, '399 - "no flow token in the Route"'],
      [core.request('MESSAGE', 'sip:alice@example.test', { route: `<sip:${'A'.repeat(24)}@127.0.0.1:${port};lr>` }), 403, '399 - "bad flow token"'],
      [core.request('MESSAGE', 'sip:alice@example.test', { route, headers: { 'Max-Forwards': '0' } }).replace('Max-Forwards: 70\r\n', ''), 483, '399 - "Max-Forwards is 0"']
    ]
    for (const [text, status, warning] of cases) {
      core.send(text, port)
      const answer = asResponse((await core.next()).message)
      assert.equal(answer.status, status, text.split('\r\n')[0])
      assert.equal(answer.get('warning'), warning)
      assert.equal(answer.get('server'), 'bridge test')
      if (status >= 300) {
        const line = await within(logged.next('sip: request refused', (e) => e.answer === status), 3000, () => `the ${status} log line`)
        assert.equal(line.direction, 'from-core')
        assert.equal(line.callId, answer.get('call-id'))
      }
    }
    assert.equal((await within(logged.next('sip: request refused', (e) => e.reason === 'bad flow token'), 3000, () => 'the log line')).method, 'MESSAGE')
  })

  test('the ACK for an INVITE the edge refused stops at the edge', async () => {
    const port = edge.bridge.local.port
    const invite = core.request('INVITE', 'sip:alice@example.test', { branch: 'z9hG4bKrefused' })
    core.send(invite, port)
    assert.equal(asResponse((await core.next()).message).status, 404)
    core.send(invite.replace(/^INVITE/, 'ACK').replace('CSeq: 1 INVITE', 'CSeq: 1 ACK'), port)
    assert.equal((await within(logged.next('sip: ACK for an answer of the edge\'s own absorbed'), 3000, () => 'the log line')).direction, 'from-core')
  })

  test('hasToken: a URI whose user part is a token this edge made, and no other', () => {
    const relay = new FlowRelay({ tokens: edge.tokens } as unknown as FlowRelayOptions)
    assert.equal(relay.hasToken(parseUri(route.slice(1, route.indexOf('>'))) ?? assert.fail()), true)
    assert.equal(relay.hasToken(parseUri(`sip:${'A'.repeat(24)}@127.0.0.1`) ?? assert.fail()), false)
    assert.equal(relay.hasToken(parseUri('sip:127.0.0.1') ?? assert.fail()), false)
  })

  test('a token whose connection is gone: 430 Flow Failed', async () => {
    const bob = await edge.client('bob')
    const id = bob.idIn(edge.app)
    const bobRoute = `<sip:${edge.tokens.make(id)}@127.0.0.1:${edge.bridge.local.port};lr>`
    await bob.close()
    await until(() => !edge.connections.has(id), 3000, () => 'bob\'s connection to go')
    core.send(core.request('MESSAGE', 'sip:bob@example.test', { route: bobRoute }), edge.bridge.local.port)
    assert.equal(asResponse((await core.next()).message).status, 430)
    assert.equal((await within(logged.next('sip: request refused', (e) => e.answer === 430), 3000, () => 'the log line')).reason, `flow ${id} is gone`)
  })
})

describe('a flow that is a connection of another node of the cluster', () => {
  const logged = recordedLog()
  let redis: RedisServer
  let client: IORedis
  let core: RawCore
  let nodeB: Started
  let edge: BridgeEdge

  before(reportedSetUp(async () => {
    redis = await startRedis()
    client = new IORedis(redis.url)
    core = await RawCore.start()
    nodeB = await startApp({ subProtocols: ['sip'], cluster: { redis: redis.url } })
    edge = await bridgeEdge(core, logged.log, { redis: redis.url })
    await until(() => edge.app.wsCluster.nodes().some((n) => n.instance === nodeB.app.wsCluster.instance), 10_000, () => 'the edge to hear node B')
  }))
  after(async () => {
    await edge?.close()
    await nodeB?.app.close()
    await core?.close()
    client?.disconnect()
    await redis?.stop()
    assertEveryDropExplained(logged.entries)
  })

  test('its local side read from Redis, the request goes there with a confirmed send; with no record: 430', async () => {
    const bob = await RawSipClient.connect(nodeB.url, 'bob')
    try {
      const id = bob.idIn(nodeB.app)
      // bob registered through node B, whose flow tokens this bridge reads (the nodes share the key).
      await new RedisBindings(client, 'sipws', nodeB.app.wsCluster.instance).put({ aor: 'bob', connectionId: id, uri: bob.contact, parsed: parseUri(bob.contact) ?? assert.fail(), params: new Map(), expiresAt: Date.now() + 60_000 }, { localAddress: '127.0.0.1', localPort: nodeB.port })
      const token = edge.tokens.make(id)
      core.send(core.request('MESSAGE', bob.contact, { route: `<sip:${token}@127.0.0.1:${edge.bridge.local.port};lr>` }), edge.bridge.local.port)
      const relayed = asRequest(await bob.next())
      assert.equal(`${topVia(relayed)?.host ?? ''}:${topVia(relayed)?.port ?? ''}`, `127.0.0.1:${nodeB.port}`, 'the Via is node B\'s local side')
      assert.equal((await within(logged.next('sip core: request relayed to its flow on another node'), 3000, () => 'the log line')).to, id)
      core.send(core.request('MESSAGE', 'sip:nobody@example.test', { route: `<sip:${edge.tokens.make(id + 1)}@127.0.0.1:${edge.bridge.local.port};lr>` }), edge.bridge.local.port)
      assert.equal(asResponse((await core.next()).message).status, 430)
    } finally {
      await bob.close()
    }
  })
})
