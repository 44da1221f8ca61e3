import { test } from 'node:test'
import assert from 'node:assert/strict'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { expectTypeOf } from 'expect-type'
import sipWs, { LwscClient, sipWs as named, type ClusterDump, type ClusterNodeInfo, type WsCluster, type ConnectionInfo, type DumpResult, type SipWsOptions, type StatsSnapshot, type WsClosedEvent, type WsMessage, type WsOpenEvent } from '../lib'

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
  })
  app.addWsHook('websocket:closed', (e) => {
    expectTypeOf(e).toEqualTypeOf<WsClosedEvent>()
    expectTypeOf(e.by).toEqualTypeOf<'local' | 'remote' | 'keepalive' | 'error'>()
  })
  // @ts-expect-error unknown hook name
  expectTypeOf(app.addWsHook).toBeCallableWith('websocket:nope', () => {})

  expectTypeOf(app.wsSend).toEqualTypeOf<(id: number, data: string | Buffer | Uint8Array) => boolean>()
  expectTypeOf(app.wsClose).parameters.toEqualTypeOf<[id?: number, status?: number, reason?: string]>()
  expectTypeOf(app.wsDump).returns.toEqualTypeOf<DumpResult>()
  expectTypeOf(app.wsDump).parameter(0).toEqualTypeOf<'id_hash' | 'used_desc' | 'used_asc' | undefined>()
  expectTypeOf(app.wsConnection).returns.toEqualTypeOf<ConnectionInfo | undefined>()
  expectTypeOf(app.wsPing).returns.toBeBoolean()
  expectTypeOf(app.wsPong).returns.toBeBoolean()
  expectTypeOf(app.wsStats).returns.toEqualTypeOf<StatsSnapshot>()
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
  expectTypeOf<{ cluster: { redis: 'redis://127.0.0.1:6379', nodeTimeout: number } }>().toMatchTypeOf<SipWsOptions>()
  expectTypeOf<{ cluster: { redis: { host: string, port: number } } }>().toMatchTypeOf<SipWsOptions>()
  expectTypeOf(app.lwsc).toEqualTypeOf<LwscClient>()
  expectTypeOf(app.lwsc.request).returns.toEqualTypeOf<Promise<string | Buffer>>()
  expectTypeOf(app.lwsc.requestProto).parameters.toEqualTypeOf<[url: string, proto: string, data: string | Buffer]>()
  expectTypeOf(app.lwsc.notify).returns.toEqualTypeOf<Promise<void>>()

  await app.ready()
  assert.equal(typeof app.wsSend, 'function')
  await app.close()
})
