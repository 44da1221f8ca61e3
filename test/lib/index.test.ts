import { test } from 'node:test'
import assert from 'node:assert/strict'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { expectTypeOf } from 'expect-type'
import type WebSocket from 'ws'
import sipWs, { LwscClient, errors, sipWs as named, type LwscError, type SipWsErrorCode, type ClusterDump, type ClusterNodeInfo, type WsCluster, type ConnectionInfo, type DumpResult, type SipWsOptions, type StatsSnapshot, type WsBinaryMessage, type WsClosedEvent, type WsData, type WsMessage, type WsOpenEvent, type WsTextMessage } from '../../lib'

// Compile-time checks: `npm test` type-checks this file with tsc before running it.
test('public types', async () => {
  expectTypeOf(named).toEqualTypeOf(sipWs)
  expectTypeOf<SipWsOptions>().toMatchTypeOf<{ path?: string | string[], corsMode?: 0 | 1 | 2, keepaliveMechanism?: 0 | 1 | 2 }>()
  expectTypeOf<{ subProtocols: 3 }>().toMatchTypeOf<SipWsOptions>()
  expectTypeOf<{ subProtocols: ['sip', 'kmsg'] }>().toMatchTypeOf<SipWsOptions>()
  expectTypeOf<{ corsMode: 3 }>().not.toMatchTypeOf<SipWsOptions>()
  expectTypeOf<{ lwsc: { timeoutRead: number } }>().toMatchTypeOf<SipWsOptions>()
  expectTypeOf<{ handshakeTimeout: number, maxBufferedAmount: number, maxConnections: number, maxConnectionsPerIp: number }>().toMatchTypeOf<SipWsOptions>()
  expectTypeOf<{ handshakeTimeout: '10s' }>().not.toMatchTypeOf<SipWsOptions>()
  expectTypeOf<{ hookTimeout: number, hookQueueLimit: number, keepaliveTimeout: number }>().toMatchTypeOf<SipWsOptions>()
  expectTypeOf<{ rpc: { path: string, allowedOrigins: string[], allowedHosts: string[] } }>().toMatchTypeOf<SipWsOptions>()
  expectTypeOf<{ rpc: {} }>().toMatchTypeOf<SipWsOptions>()
  expectTypeOf<{ rpc: { allowedOrigins: string } }>().not.toMatchTypeOf<SipWsOptions>()
  expectTypeOf<{ rpc: { allowedHosts: boolean } }>().not.toMatchTypeOf<SipWsOptions>()

  const app = Fastify()
  await app.register(sipWs, { path: ['/ws'], subProtocols: ['sip'], corsMode: 2 })

  app.addWsHook('xhttp:request', async function (request, reply) {
    expectTypeOf(this).toEqualTypeOf<FastifyInstance>()
    expectTypeOf(request).toEqualTypeOf<FastifyRequest>()
    expectTypeOf(reply).toEqualTypeOf<FastifyReply>()
    expectTypeOf(request.wsSubProtocol).toEqualTypeOf<string | null>()
  })
  app.addWsHook('websocket:open', (e) => { expectTypeOf(e).toEqualTypeOf<WsOpenEvent>() })
  app.addWsHook('websocket:message', (m) => {
    expectTypeOf(m).toEqualTypeOf<WsMessage>()
    expectTypeOf(m.data).toEqualTypeOf<string | Buffer>()
    expectTypeOf(m.id).toBeNumber()
    // `binary` narrows `data`.
    if (m.binary) {
      expectTypeOf(m).toEqualTypeOf<WsBinaryMessage>()
      expectTypeOf(m.data).toEqualTypeOf<Buffer>()
    } else {
      expectTypeOf(m).toEqualTypeOf<WsTextMessage>()
      expectTypeOf(m.data).toEqualTypeOf<string>()
      expectTypeOf(m.data.startsWith('OPTIONS ')).toBeBoolean()
    }
  })
  expectTypeOf<{ id: 1, data: Buffer, binary: false, subProtocol: 'sip', remoteAddress: '', remotePort: 0 }>().not.toMatchTypeOf<WsMessage>()
  expectTypeOf<WsOpenEvent>().toMatchTypeOf<{ remoteAddress: string, remotePort: number, socketAddress: string, socketPort: number }>()
  expectTypeOf<WsClosedEvent>().toMatchTypeOf<{ remoteAddress: string, remotePort: number, socketAddress: string, socketPort: number }>()
  expectTypeOf<ConnectionInfo>().toMatchTypeOf<{ remoteAddress: string, socketAddress: string, socketPort: number, transport: 'ws' | 'wss' }>()
  app.addWsHook('websocket:closed', (e) => {
    expectTypeOf(e).toEqualTypeOf<WsClosedEvent>()
    expectTypeOf(e.by).toEqualTypeOf<'local' | 'remote' | 'keepalive' | 'error'>()
  })
  // @ts-expect-error unknown hook name
  expectTypeOf(app.addWsHook).toBeCallableWith('websocket:nope', () => {})

  expectTypeOf(app.wsSend).toEqualTypeOf<(id: number, data: string | Buffer | Uint8Array) => boolean>()
  expectTypeOf<WsData>().toEqualTypeOf<string | Buffer | Uint8Array>()
  // wsClose needs an id; wsCloseAll closes every connection.
  expectTypeOf(app.wsClose).parameters.toEqualTypeOf<[id: number, status?: number, reason?: string]>()
  // @ts-expect-error an id is required
  expectTypeOf(app.wsClose).toBeCallableWith()
  expectTypeOf(app.wsCloseAll).parameters.toEqualTypeOf<[status?: number, reason?: string]>()
  expectTypeOf(app.wsCloseAll).returns.toBeNumber()
  expectTypeOf(app.wsDump).returns.toEqualTypeOf<DumpResult>()
  expectTypeOf(app.wsDump).parameter(0).toEqualTypeOf<'id_hash' | 'used_desc' | 'used_asc' | undefined>()
  expectTypeOf(app.wsConnection).returns.toEqualTypeOf<ConnectionInfo | undefined>()
  expectTypeOf(app.wsPing).returns.toBeBoolean()
  expectTypeOf(app.wsPong).returns.toBeBoolean()
  expectTypeOf(app.wsStats).returns.toEqualTypeOf<StatsSnapshot>()
  // Kamailio's names: the totals, sip's and msrp's always, any other sub-protocol's by pattern; nothing else.
  const stats = app.wsStats()
  expectTypeOf(stats.ws_current_connections).toBeNumber()
  expectTypeOf(stats.ws_failed_handshakes).toBeNumber()
  expectTypeOf(stats.ws_handshake_timeouts).toBeNumber()
  expectTypeOf(stats.ws_sip_received_frames).toBeNumber()
  expectTypeOf(stats.ws_msrp_successful_handshakes).toBeNumber()
  expectTypeOf(stats.ws_kmsg_transmitted_frames).toBeNumber()
  expectTypeOf<StatsSnapshot>().toHaveProperty('ws_sip_max_concurrent_connections')
  // @ts-expect-error not a statistic
  expectTypeOf(stats.ws_current_connection).toBeNumber()
  // @ts-expect-error sub-protocols have no failed_handshakes of their own
  expectTypeOf(stats.ws_sip_failed_handshakes).toBeNumber()
  expectTypeOf(app.wsDisable).returns.toBeVoid()
  expectTypeOf(app.wsDrain).parameters.toEqualTypeOf<[options?: { within?: number }]>()
  expectTypeOf(app.wsDrain).returns.toEqualTypeOf<Promise<void>>()
  expectTypeOf(app.wsCluster).toEqualTypeOf<WsCluster>()
  expectTypeOf(app.wsCluster.send).returns.toEqualTypeOf<Promise<boolean>>()
  expectTypeOf(app.wsCluster.dump).returns.toEqualTypeOf<Promise<ClusterDump>>()
  expectTypeOf<ClusterDump['missing'][number]>().toEqualTypeOf<{ instance: string, slot: number }>()
  expectTypeOf(app.wsCluster.nodes).returns.toEqualTypeOf<ClusterNodeInfo[]>()
  app.addWsHook('cluster:node-down', (node) => {
    expectTypeOf(node).toEqualTypeOf<ClusterNodeInfo>()
    expectTypeOf(node.prefixes).toEqualTypeOf<number[]>()
  })
  app.addWsHook('cluster:rejoined', async ({ instance, reason, gapMs }) => {
    expectTypeOf(instance).toBeString()
    expectTypeOf(reason).toEqualTypeOf<'lease-expired' | 'lease-lost' | 'stalled'>()
    expectTypeOf(gapMs).toBeNumber()
  })
  expectTypeOf<{ cluster: { redis: { sentinels: [{ host: '127.0.0.1', port: 26379 }], name: 'mymaster' } } }>().toMatchTypeOf<SipWsOptions>()
  expectTypeOf<{ cluster: { redis: 'redis://127.0.0.1:6379', nodeTimeout: number } }>().toMatchTypeOf<SipWsOptions>()
  expectTypeOf<{ cluster: { redis: { host: string, port: number } } }>().toMatchTypeOf<SipWsOptions>()
  expectTypeOf(app.lwsc).toEqualTypeOf<LwscClient>()
  expectTypeOf(app.lwsc.request).returns.toEqualTypeOf<Promise<string | Buffer>>()
  // wsSend and the client take the same data.
  expectTypeOf(app.lwsc.requestProto).parameters.toEqualTypeOf<[url: string, proto: string, data: WsData]>()
  expectTypeOf(app.lwsc.notify).parameters.toEqualTypeOf<[url: string, data: WsData]>()
  expectTypeOf<Parameters<typeof app.lwsc.request>[1]>().toEqualTypeOf<Parameters<typeof app.wsSend>[1]>()
  expectTypeOf(app.lwsc.notify).returns.toEqualTypeOf<Promise<void>>()
  // @fastify/websocket's test helper is typed, since the plugin registers it.
  expectTypeOf(app.injectWS).parameter(0).toEqualTypeOf<string | undefined>()
  expectTypeOf(app.injectWS).returns.resolves.toMatchTypeOf<Pick<WebSocket, 'send' | 'close' | 'protocol'>>()

  await app.ready()
  assert.equal(typeof app.wsSend, 'function')
  await app.close()
})

const CODES = [
  'FST_SIPWS_INVALID_OPTION', 'FST_SIPWS_UNKNOWN_HOOK', 'FST_SIPWS_HOOK_NOT_FUNCTION', 'FST_SIPWS_BAD_DUMP_ORDER',
  'FST_SIPWS_BAD_CONNECTION_ID', 'FST_SIPWS_INVALID_ARGUMENT', 'FST_SIPWS_MISSING_INTERNAL', 'FST_SIPWS_LWSC_BAD_URL',
  'FST_SIPWS_LWSC_CONNECT_TIMEOUT', 'FST_SIPWS_LWSC_READ_TIMEOUT', 'FST_SIPWS_LWSC_CONNECTION_FAILED',
  'FST_SIPWS_LWSC_PROTOCOL_REFUSED', 'FST_SIPWS_LWSC_QUEUE_FULL', 'FST_SIPWS_LWSC_CLOSED', 'FST_SIPWS_INVALID_CLOSE',
  'FST_SIPWS_INVALID_DRAIN', 'FST_SIPWS_CLUSTER_UNAVAILABLE', 'FST_SIPWS_CLUSTER_TIMEOUT', 'FST_SIPWS_CLUSTER_NODE_GONE'
] as const

test('error types: SipWsErrorCode is the union of every code; lwsc errors have a typed url', () => {
  // The type is the list, and the list is what the classes give at run time: the union misses none.
  expectTypeOf<SipWsErrorCode>().toEqualTypeOf<typeof CODES[number]>()
  const classes = Object.values(errors) as Array<new (...args: unknown[]) => Error & { code: string }>
  assert.deepEqual(classes.map((E) => new E().code).sort(), [...CODES].sort())
  const matches = (err: { code: string }, code: SipWsErrorCode): boolean => err.code === code
  assert.equal(matches(new errors.InvalidDrainError('x'), 'FST_SIPWS_INVALID_DRAIN'), true)

  // instanceof narrows a caught error to one with its target in `url`; the other errors have none.
  const target = (err: unknown): string | null => err instanceof errors.LwscReadTimeoutError ? err.url : null
  expectTypeOf<InstanceType<typeof errors.LwscReadTimeoutError>['code']>().toEqualTypeOf<'FST_SIPWS_LWSC_READ_TIMEOUT'>()
  expectTypeOf<InstanceType<typeof errors.LwscConnectionError>>().toMatchTypeOf<LwscError>()
  expectTypeOf<InstanceType<typeof errors.BadDumpOrderError>>().not.toHaveProperty('url')
  expectTypeOf<LwscError['url']>().toBeString()
  assert.equal(target(new errors.LwscReadTimeoutError('ws://10.0.0.1/', 1000)), 'ws://10.0.0.1/')
  assert.equal(target(new errors.LwscClosedError('ws://10.0.0.1/')), null)
  // However an lwsc error is built (new or not, with a cause), it has the `url` its type promises.
  const lwsc = Object.entries(errors).filter(([name]) => name.startsWith('Lwsc')) as Array<[string, (...args: unknown[]) => LwscError]>
  assert.equal(lwsc.length, 7)
  for (const [name, E] of lwsc) {
    const err = E('wss://edge.example/ws', 'x', { cause: new Error('under') })
    assert.deepEqual([err.url, err instanceof (E as unknown as typeof Error), err.message.includes('wss://edge.example/ws')], ['wss://edge.example/ws', true, true], name)
    assert.match(err.stack ?? '', /^FastifyError: lwsc: [^\n]*\n {4}at .*index\.test\.ts/, `${name}: the stack starts where it was raised`)
  }
})
