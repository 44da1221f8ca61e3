import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import { SingleProcess } from '../../../lib/cluster/single-process'
import { buildEdge, type Edge } from '../../../lib/edge'
import { Admission } from '../../../lib/handshake/admission'
import { Hooks } from '../../../lib/hooks'
import { Telemetry } from '../../../lib/observe/telemetry'
import { resolveSettings, type SipWsOptions } from '../../../lib/options'
import { entry } from '../../helpers/connections'
import { handshakeLines, rawRequest, request } from '../../helpers/raw'

/**
 * Admission asked about real requests: a Fastify app with no upgrade listener takes an upgrade request as a
 * plain one (Node does so), and its route hands the request to the admission under test and answers with
 * the decision as JSON. The lifecycle and registry it asks are an edge's own.
 */
describe('Admission', () => {
  let app: FastifyInstance
  let port = 0
  let current: { admission: Admission, chosen: unknown, address: string | null } | null = null
  const edges: Edge[] = []

  before(async () => {
    app = Fastify({ logger: false })
    app.get('/admit', async (req) => {
      if (current === null) throw new Error('no admission under test')
      if (current.chosen !== undefined) Object.assign(req, { wsSubProtocol: current.chosen })
      return current.admission.admit(req, current.address ?? req.ip)
    })
    await app.listen({ host: '127.0.0.1', port: 0 })
    port = (app.server.address() as AddressInfo).port
  })
  after(async () => {
    for (const edge of edges) edge.keepalive.stop()
    await app.close()
  })

  /** An edge's admission with these options; `chosen` plays a hook's `wsSubProtocol`, `address` the client's. */
  function admission (options: SipWsOptions = {}, chosen?: unknown, address: string | null = null): Edge {
    const settings = resolveSettings(options)
    const edge = buildEdge(settings, new Hooks(app.log), new SingleProcess(), app.log, new Telemetry(app, app.log, 'info'))
    edge.keepalive.stop()
    edges.push(edge)
    current = { admission: new Admission(settings, edge.lifecycle, edge.registry), chosen, address }
    return edge
  }

  /** The same admission, asked about a request a hook chose `chosen` for, from `address`. */
  function askAs (chosen: unknown, address: string | null): void {
    if (current !== null) current = { ...current, chosen, address }
  }

  async function admit (extra: Record<string, string | null> = {}, first = 'GET /admit HTTP/1.1'): Promise<unknown> {
    const res = await rawRequest(port, request(handshakeLines(port, extra, first)))
    res.socket.destroy()
    assert.equal(res.status, 200, res.body)
    return JSON.parse(res.body)
  }

  /** Fills the registry with socketless connections from `remoteAddress`. */
  function fill (edge: Edge, n: number, remoteAddress = '127.0.0.1'): void {
    for (let i = 0; i < n; i++) edge.registry.add(entry(edge.registry.nextId(), Date.now(), { remoteAddress }))
  }

  test('a valid handshake is let in with the first enabled sub-protocol offered, in the client\'s spelling', async () => {
    admission()
    assert.deepEqual(await admit({ 'Sec-WebSocket-Protocol': 'foo, SIP, msrp' }), { protocol: 'SIP' })
    admission({ subProtocols: ['kmsg'] })
    assert.deepEqual(await admit({ 'Sec-WebSocket-Protocol': 'sip, kmsg' }), { protocol: 'kmsg' })
  })

  test('the first reason wins: leaving, then disabled, then the RFC 6455 checks, the header, a hook\'s choice, the limits', async () => {
    const RETRY = { 'Retry-After': '5' }
    const bad = { 'Sec-WebSocket-Version': '8', 'Sec-WebSocket-Protocol': 'sip;x' }
    const edge = admission({ maxConnections: 1 }, 42)
    // Drained while empty: a drain waits for the connections it closes to go, and these have no socket.
    await edge.lifecycle.drain(0)
    fill(edge, 1)
    edge.lifecycle.setEnabled(false)
    assert.deepEqual(await admit(bad), { status: 503, headers: RETRY, message: 'WebSocket service draining: connect to another node' })
    edge.lifecycle.setEnabled(true)
    edge.lifecycle.setEnabled(false)
    assert.deepEqual(await admit(bad), { status: 503, message: 'WebSocket service disabled' })
    edge.lifecycle.setEnabled(true)
    assert.deepEqual(await admit(bad), { status: 426, headers: { 'Sec-WebSocket-Version': '13' }, message: 'Unsupported WebSocket version 8; this server speaks 13' })
    assert.deepEqual(await admit({ 'Sec-WebSocket-Protocol': 'sip;x' }), { status: 400, message: 'Invalid Sec-WebSocket-Protocol header: expected a comma-separated list of tokens' })
    assert.deepEqual(await admit(), { status: 500, message: 'An xhttp:request hook set request.wsSubProtocol to a number; expected the name of an offered sub-protocol' })
    askAs(undefined, null)
    assert.deepEqual(await admit({ 'Sec-WebSocket-Protocol': 'foo' }), {
      status: 400,
      headers: { 'Sec-WebSocket-Protocol': 'sip, msrp', 'Sec-WebSocket-Version': '13' },
      message: 'None of the offered sub-protocols (foo) is supported; supported: sip, msrp'
    }, 'a client that could never get in learns why, not that the server is full')
    assert.deepEqual(await admit(), { status: 503, headers: RETRY, message: 'Connection limit reached (1)' })
  })

  test('shutting down: 503 with Retry-After, whatever the request', async () => {
    const edge = admission()
    edge.lifecycle.beginShutdown()
    assert.deepEqual(await admit({ Upgrade: null }, 'GET /admit HTTP/1.0'), { status: 503, headers: { 'Retry-After': '5' }, message: 'WebSocket service shutting down' })
    assert.deepEqual(current?.admission.leavingRefusal(), { status: 503, headers: { 'Retry-After': '5' }, message: 'WebSocket service shutting down' })
  })

  test('leavingRefusal: none while serving, the drain\'s 503 while draining, none again once enabled', async () => {
    const edge = admission()
    const a = current?.admission as Admission
    assert.equal(a.leavingRefusal(), null)
    await edge.lifecycle.drain(0)
    assert.equal(a.leavingRefusal()?.message, 'WebSocket service draining: connect to another node')
    edge.lifecycle.setEnabled(true)
    assert.equal(a.leavingRefusal(), null)
    assert.deepEqual(await admit(), { protocol: 'sip' })
  })

  test('a hook\'s choice: taken among those offered, in the client\'s spelling; one not enabled or not offered is a 500', async () => {
    admission({}, 'msrp')
    assert.deepEqual(await admit({ 'Sec-WebSocket-Protocol': 'sip, MSRP' }), { protocol: 'MSRP' })
    assert.deepEqual(await admit({ 'Sec-WebSocket-Protocol': 'sip' }), { status: 500, message: 'An xhttp:request hook set request.wsSubProtocol to "msrp", which the client did not offer (offered: sip)' })
    admission({}, 'kmsg')
    assert.deepEqual(await admit({ 'Sec-WebSocket-Protocol': 'kmsg, sip' }), { status: 500, message: 'An xhttp:request hook set request.wsSubProtocol to "kmsg", which is not enabled (subProtocols: sip, msrp)' })
    // null is the decorator's default: no choice made.
    admission({}, null)
    assert.deepEqual(await admit({ 'Sec-WebSocket-Protocol': 'msrp, sip' }), { protocol: 'msrp' })
    admission({}, { name: 'sip' })
    assert.deepEqual(await admit(), { status: 500, message: 'An xhttp:request hook set request.wsSubProtocol to a object; expected the name of an offered sub-protocol' })
  })

  test('maxConnections counts this node\'s connections: one below the limit is let in, at the limit 503 with Retry-After', async () => {
    const edge = admission({ maxConnections: 3 })
    fill(edge, 2, '10.0.0.1')
    assert.deepEqual(await admit(), { protocol: 'sip' })
    fill(edge, 1, '10.0.0.2')
    assert.deepEqual(await admit(), { status: 503, headers: { 'Retry-After': '5' }, message: 'Connection limit reached (3)' })
  })

  test('maxConnectionsPerIp counts the client\'s address only', async () => {
    const edge = admission({ maxConnectionsPerIp: 2 }, undefined, '192.0.2.7')
    fill(edge, 2, '192.0.2.7')
    fill(edge, 5, '192.0.2.8')
    assert.deepEqual(await admit(), { status: 503, headers: { 'Retry-After': '5' }, message: 'Connection limit per address reached (2)' })
    askAs(undefined, '192.0.2.9')
    assert.deepEqual(await admit(), { protocol: 'sip' })
    const left = edge.registry.get(1)
    if (left !== undefined) edge.registry.remove(left)
    askAs(undefined, '192.0.2.7')
    assert.deepEqual(await admit(), { protocol: 'sip' }, 'a slot freed is a slot again')
  })

  test('0 is no limit', async () => {
    const edge = admission({ maxConnections: 0, maxConnectionsPerIp: 0 })
    fill(edge, 200)
    assert.deepEqual(await admit(), { protocol: 'sip' })
  })

  test('it decides and changes nothing: no connection, statistic or service state moves, however often asked', async () => {
    const edge = admission({ maxConnections: 2 })
    fill(edge, 1)
    const stats = edge.stats.snapshot()
    for (let i = 0; i < 5; i++) assert.deepEqual(await admit(), { protocol: 'sip' })
    for (let i = 0; i < 3; i++) await admit({ 'Sec-WebSocket-Key': null })
    assert.equal(edge.registry.size, 1)
    assert.deepEqual(edge.stats.snapshot(), stats)
    assert.equal(edge.lifecycle.enabled, true)
  })
})
