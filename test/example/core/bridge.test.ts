import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import dgram from 'node:dgram'
import { once } from 'node:events'
import net from 'node:net'
import { after, before, describe, test } from 'node:test'
import IORedis from 'ioredis'
import { ClusterLocations } from '../../../example/cluster/locations'
import { RedisBindings } from '../../../example/cluster/redis-bindings'
import { CoreBridge, UDP_LIMIT } from '../../../example/core/bridge'
import { FlowTokens } from '../../../example/core/flow-token'
import { ProxyVia } from '../../../example/proxy/proxy-via'
import { Registrar } from '../../../example/proxy/registrar'
import { splitList } from '../../../example/sip/headers'
import { parseSip, SipRequest, SipResponse, type SipMessage } from '../../../example/sip/message'
import { SipStreamReader } from '../../../example/sip/stream'
import { parseUri } from '../../../example/sip/uri'
import { topVia } from '../../../example/sip/via'
import { RawSipClient } from '../../e2e/helpers'
import { recordedLog } from '../../helpers/log'
import { freePort } from '../../helpers/lwsc'
import { until, within } from '../../helpers/pool'
import { startRedis, type RedisServer } from '../../helpers/redis'
import { startApp, type Started } from '../../helpers/server'
import { reportedSetUp } from '../../helpers/set-up'
import { startSipApp, type SipApp } from '../../helpers/sip-app'

const asRequest = (message: SipMessage): SipRequest => { assert.ok(message instanceof SipRequest, message.toString().split('\r\n')[0]); return message }
const asResponse = (message: SipMessage): SipResponse => { assert.ok(message instanceof SipResponse, message.toString().split('\r\n')[0]); return message }

/** A SIP core for the bridge to talk to: a UDP socket and a TCP listener on one port of 127.0.0.1. */
class Core {
  private readonly queue: Array<{ message: SipMessage, transport: 'udp' | 'tcp' }> = []
  private readonly waiters: Array<(m: { message: SipMessage, transport: 'udp' | 'tcp' }) => void> = []
  private readonly sockets: net.Socket[] = []
  private constructor (readonly port: number, private readonly udp: dgram.Socket, private readonly tcp: net.Server) {
    udp.on('message', (data) => { this.push(parseSip(data), 'udp') })
    tcp.on('connection', (socket) => {
      this.sockets.push(socket)
      const reader = new SipStreamReader()
      socket.on('data', (chunk: Buffer) => { for (const item of reader.push(chunk)) if (item.kind === 'message') this.push(parseSip(item.data), 'tcp') })
    })
  }

  static async start (): Promise<Core> {
    const port = await freePort('both')
    const udp = dgram.createSocket('udp4')
    udp.bind(port, '127.0.0.1')
    await once(udp, 'listening')
    const tcp = net.createServer()
    tcp.listen(port, '127.0.0.1')
    await once(tcp, 'listening')
    return new Core(port, udp, tcp)
  }

  private push (message: SipMessage, transport: 'udp' | 'tcp'): void {
    const waiter = this.waiters.shift()
    if (waiter !== undefined) waiter({ message, transport })
    else this.queue.push({ message, transport })
  }

  async next (): Promise<{ message: SipMessage, transport: 'udp' | 'tcp' }> {
    const queued = this.queue.shift()
    if (queued !== undefined) return queued
    return await within(new Promise((resolve) => { this.waiters.push(resolve) }), 3000, () => 'a message at the core')
  }

  /** Sends over UDP to the edge. */
  send (text: string, port: number): void {
    this.udp.send(text, port, '127.0.0.1')
  }

  /** A request as the core sends it to the edge: its own Via with rport, Route to the edge when given. */
  request (method: string, uri: string, options: { route?: string, branch?: string, headers?: Record<string, string> } = {}): string {
    let text = `${method} ${uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${this.port};branch=${options.branch ?? `z9hG4bK${randomBytes(6).toString('hex')}`};rport\r\n`
    if (options.route !== undefined) text += `Route: ${options.route}\r\n`
    text += `Max-Forwards: 70\r\nFrom: <sip:phone@core.example>;tag=p1\r\nTo: <${uri}>\r\nCall-ID: ${randomBytes(6).toString('hex')}\r\nCSeq: 1 ${method}\r\n`
    for (const [name, value] of Object.entries(options.headers ?? {})) text += `${name}: ${value}\r\n`
    return text + 'Content-Length: 0\r\n\r\n'
  }

  async close (): Promise<void> {
    for (const socket of this.sockets) socket.destroy()
    this.udp.close()
    await new Promise((resolve) => { this.tcp.close(resolve) })
  }
}

/** The response a core's registrar sends: the request's Vias, From, To, Call-ID, CSeq, and `extra`. */
function coreAnswer (request: SipRequest, status: number, extra: Record<string, string> = {}): string {
  let text = `SIP/2.0 ${status} Answer\r\n`
  for (const via of request.getAll('via')) text += `Via: ${via}\r\n`
  for (const name of ['From', 'To', 'Call-ID', 'CSeq']) text += `${name}: ${request.get(name) ?? ''}\r\n`
  for (const [name, value] of Object.entries(extra)) text += `${name}: ${value}\r\n`
  return text + 'Content-Length: 0\r\n\r\n'
}

/** A server whose clients' requests go to the bridge and whose responses to the core's requests go back through it. */
async function bridgeEdge (core: Core, log: ReturnType<typeof recordedLog>['log'], remote: (app: Started['app']) => ConstructorParameters<typeof ClusterLocations> | null = () => null, options = {}): Promise<SipApp & { bridge: CoreBridge, registrar: Registrar, tokens: FlowTokens }> {
  const tokenKey = randomBytes(32)
  let bridge: CoreBridge | undefined
  const registrar = new Registrar()
  const edge = await startSipApp(async (app, connections) => {
    const via = new ProxyVia(randomBytes(32))
    const args = remote(app)
    const made = new CoreBridge({
      core: { transport: 'udp', host: '127.0.0.1', port: core.port },
      listen: { transport: 'udp', host: '127.0.0.1', port: 0 },
      via, tokenKey, registrar, connections, sendWs: (id, text) => app.wsSend(id, text), log, serverName: 'bridge test',
      remote: args === null ? null : new ClusterLocations(...args)
    })
    bridge = made
    await made.start()
    app.addHook('onClose', async () => { await made.close() })
    return {
      message: (id, data) => {
        const message = parseSip(data)
        if (message.kind === 'request') made.toCore(id, message)
        else if ('source' in via.pop(message)) made.responseToCore(message)
      }
    }
  }, options)
  return { ...edge, bridge: bridge ?? assert.fail('no bridge'), registrar, tokens: new FlowTokens(tokenKey) }
}

describe('the bridge between WebSocket clients and a core', () => {
  const logged = recordedLog()
  let core: Core
  let edge: Awaited<ReturnType<typeof bridgeEdge>>
  let alice: RawSipClient
  /** alice's flow token, from the Path of her REGISTER. */
  let token = ''

  before(reportedSetUp(async () => {
    core = await Core.start()
    edge = await bridgeEdge(core, logged.log)
    alice = await edge.client('alice')
  }))
  after(async () => {
    await edge?.close()
    await core?.close()
  })

  test('REGISTER: to the core with a Path holding the flow token and Supported path, outbound; the 2xx back to the client, and mirrored', async () => {
    alice.send(alice.request('REGISTER', 'sip:example.test', { to: 'sip:alice@example.test', headers: { Supported: 'gruu' } }))
    const { message, transport } = await core.next()
    const request = asRequest(message)
    assert.equal(transport, 'udp')
    const path = /^<sip:([A-Za-z0-9_-]{24})@127\.0\.0\.1:(\d+);lr;ob>$/.exec(request.get('path') ?? '')
    assert.ok(path !== null, request.get('path'))
    assert.equal(Number(path[2]), edge.bridge.local.port)
    token = path[1]
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

  test('an INVITE from a client is record-routed twice: the core-facing route with the token on top', async () => {
    alice.send(alice.request('INVITE', 'sip:phone@core.example'))
    const request = asRequest((await core.next()).message)
    const routes = request.getAll('record-route').flatMap(splitList)
    assert.equal(routes.length, 2)
    assert.match(routes[0], new RegExp(`^<sip:[A-Za-z0-9_-]{24}@127\\.0\\.0\\.1:${edge.bridge.local.port};lr;r2=on>$`))
    assert.equal(routes[1], `<sip:127.0.0.1:${edge.port};transport=ws;lr;r2=on>`)
    assert.equal(edge.bridge.namesEdge(parseUri(routes[0].slice(1, routes[0].indexOf('>'))) ?? assert.fail()), true)
  })

  test('a request from the core for a flow: to its client with the edge\'s Via and routes; the answer goes back by the core\'s Via', async () => {
    const route = `<sip:${token}@127.0.0.1:${edge.bridge.local.port};lr>`
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
    assert.equal((await within(logged.next('sip core: retransmission absorbed'), 3000, () => 'the log line')).method, 'INVITE')
  })

  test('answered by the edge itself: OPTIONS for it 200, no token 404, a forged token 403, Max-Forwards 0 483, a bad request 400', async () => {
    const port = edge.bridge.local.port
    const cases: Array<[string, number, string | undefined]> = [
      [core.request('OPTIONS', `sip:127.0.0.1:${port}`), 200, undefined],
      [core.request('MESSAGE', 'sip:alice@example.test'), 404, '399 - "no flow token in the Route"'],
      [core.request('MESSAGE', 'sip:alice@example.test', { route: `<sip:${'A'.repeat(24)}@127.0.0.1:${port};lr>` }), 403, '399 - "bad flow token"'],
      [core.request('MESSAGE', 'sip:alice@example.test', { headers: { 'Max-Forwards': '0' } }).replace('Max-Forwards: 70\r\n', ''), 483, undefined],
      [core.request('MESSAGE', 'sip:alice@example.test').replace('CSeq: 1 MESSAGE', 'CSeq: 1 INVITE'), 400, '399 - "CSeq method does not match the request"']
    ]
    for (const [text, status, warning] of cases) {
      core.send(text, port)
      const answer = asResponse((await core.next()).message)
      assert.equal(answer.status, status, text.split('\r\n')[0])
      assert.equal(answer.get('warning'), warning)
      assert.equal(answer.get('server'), 'bridge test')
    }
    assert.equal((await within(logged.next('sip core: forged flow token, nothing relayed'), 3000, () => 'the log line')).method, 'MESSAGE')
  })

  test('a token whose connection is gone: 430 Flow Failed', async () => {
    const bob = await edge.client('bob')
    bob.send(bob.request('REGISTER', 'sip:example.test', { to: 'sip:bob@example.test' }))
    const register = asRequest((await core.next()).message)
    const bobToken = /^<sip:([^@]+)@/.exec(register.get('path') ?? '')?.[1] ?? assert.fail()
    const id = bob.idIn(edge.app)
    await bob.close()
    await until(() => !edge.connections.has(id), 3000, () => 'bob\'s connection to go')
    core.send(core.request('MESSAGE', 'sip:bob@example.test', { route: `<sip:${bobToken}@127.0.0.1:${edge.bridge.local.port};lr>` }), edge.bridge.local.port)
    assert.equal(asResponse((await core.next()).message).status, 430)
    assert.equal((await within(logged.next('sip core: flow gone, 430 Flow Failed'), 3000, () => 'the log line')).id, id)
  })

  test(`a request over ${UDP_LIMIT} bytes goes to the core over TCP`, async () => {
    alice.send(alice.request('MESSAGE', 'sip:phone@core.example', { body: 'x'.repeat(UDP_LIMIT) }))
    const { message, transport } = await core.next()
    assert.equal(transport, 'tcp')
    assert.equal(topVia(message)?.protocol, 'SIP/2.0/TCP')
    assert.equal(message.getAll('via').flatMap(splitList).length, 2, 'the UDP Via was replaced, not stacked')
  })

  test('what the core sends that is not for the edge is dropped, logged', async () => {
    core.send('garbage\r\n\r\n', edge.bridge.local.port)
    assert.match(String((await within(logged.next('sip core: unparsable message dropped'), 3000, () => 'the log line')).problem), /bad start line/)
    core.send('SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKx\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n', edge.bridge.local.port)
    assert.equal((await within(logged.next('sip core: response not for us dropped'), 3000, () => 'the log line')).status, 200)
  })
})

describe('the bridge in a cluster: a flow that is a connection of another node', () => {
  const logged = recordedLog()
  let redis: RedisServer
  let client: IORedis
  let core: Core
  let nodeB: Started
  let edge: Awaited<ReturnType<typeof bridgeEdge>>

  before(reportedSetUp(async () => {
    redis = await startRedis()
    client = new IORedis(redis.url)
    core = await Core.start()
    nodeB = await startApp({ subProtocols: ['sip'], cluster: { redis: redis.url } })
    edge = await bridgeEdge(core, logged.log, (app) => [new RedisBindings(client, 'sipws', app.wsCluster.instance), app.wsCluster, new Map(), logged.log], { cluster: { redis: redis.url } })
    await until(() => edge.app.wsCluster.nodes().some((n) => n.instance === nodeB.app.wsCluster.instance), 10_000, () => 'the edge to hear node B')
  }))
  after(async () => {
    await edge?.close()
    await nodeB?.app.close()
    await core?.close()
    client?.disconnect()
    await redis?.stop()
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
