import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import Fastify from 'fastify'
import pino from 'pino'
import { SingleProcess } from '../../lib/cluster/single-process'
import { CurrentMessage } from '../../lib/connection/current-message'
import { Stats } from '../../lib/connection/stats'
import { resolveSettings, type SipWsOptions } from '../../lib/options'
import { Telemetry } from '../../lib/observe/telemetry'
import { WsServer } from '../../lib/server'
import { entry, registry as newRegistry } from '../helpers/connections'
import { startEdge, type StartedEdge } from '../helpers/edge'
import { closePayload, frame, rawWebSocket, type FrameReader } from '../helpers/frames'
import { loggedApp } from '../helpers/server'

const TEXT = 1
const BINARY = 2
const CLOSE = 8
const PING = 9
const PONG = 10

/** An edge with one raw WebSocket open on it, and that connection's id. */
async function withPeer (t: { after: (fn: () => Promise<void>) => void }, options: SipWsOptions = {}, fastifyOptions?: Parameters<typeof startEdge>[2]): Promise<{ s: StartedEdge, raw: FrameReader, id: number }> {
  const s = await startEdge(options, undefined, fastifyOptions)
  let raw: FrameReader | null = null
  // A raw peer answers no Close: hung up first, it holds no shutdown for closeTimeout.
  t.after(async () => { raw?.socket.destroy(); await s.close() })
  raw = await rawWebSocket(s.port)
  return { s, raw, id: s.edge.server.dump().connections[0].id }
}

/** A server over socketless connections, for what needs no frame on a wire. */
function bare (options: SipWsOptions = {}): { server: WsServer, add: (remoteAddress?: string) => number, stats: Stats } {
  const settings = resolveSettings(options)
  const registry = newRegistry()
  const stats = new Stats(settings.enabledProtocols)
  const log = pino({ level: 'silent' })
  const server = new WsServer(settings, registry, stats, new SingleProcess().remote, new CurrentMessage(), log, new Telemetry(Fastify(), log, 'info'))
  return {
    server,
    stats,
    add: (remoteAddress = '10.0.0.1') => {
      const conn = entry(registry.nextId(), Date.now(), { remoteAddress })
      registry.add(conn)
      return conn.id
    }
  }
}

describe('WsServer.send', () => {
  test('a string goes as a text frame, a Buffer or any Uint8Array as a binary one; each is a frame counted and a use', async (t) => {
    const { s, raw, id } = await withPeer(t, { subProtocols: ['sip'] })
    const before = s.edge.stats.snapshot()
    const backing = Uint8Array.from([9, 9, 1, 2, 3, 9])
    for (const data of ['INVITE', Buffer.from([0, 255]), Uint8Array.from([7, 8]), backing.subarray(2, 5)]) {
      assert.equal(s.edge.server.send(id, data), true)
    }
    const frames = await Promise.all([raw.next(), raw.next(), raw.next(), raw.next()])
    assert.deepEqual(frames.map((f) => [f?.opcode, [...(f?.payload ?? [])]]), [
      [TEXT, [...Buffer.from('INVITE')]],
      [BINARY, [0, 255]],
      [BINARY, [7, 8]],
      [BINARY, [1, 2, 3]]
    ], 'a view sends its own bytes, not its backing buffer\'s')
    const after = s.edge.stats.snapshot()
    assert.equal(after.ws_transmitted_frames - before.ws_transmitted_frames, 4)
    assert.equal(after.ws_sip_transmitted_frames - before.ws_sip_transmitted_frames, 4)
  })

  test('the data is checked before the id: bad data throws for any id; an id nobody holds is false', () => {
    const { server, add } = bare()
    const id = add()
    for (const target of [id, 424242]) {
      for (const bad of [42, null, undefined, {}, [1, 2], new ArrayBuffer(2)]) {
        assert.throws(() => server.send(target, bad as never), { code: 'FST_SIPWS_INVALID_ARGUMENT', statusCode: 400 }, `${target} ${String(bad)}`)
      }
    }
    assert.equal(server.send(424242, 'x'), false, 'no other process holds connections')
  })

  test('a closing connection, or one with no socket, takes nothing', async (t) => {
    const { server, add } = bare()
    assert.equal(server.send(add(), 'x'), false, 'no socket')
    const { s, raw, id } = await withPeer(t, { closeTimeout: 5000 })
    raw.write(frame(CLOSE, closePayload(1001)))
    assert.equal((await raw.closeFrame())?.code, 1001)
    assert.equal(s.edge.server.info(id)?.state, 'CLOSING')
    const before = s.edge.stats.snapshot().ws_transmitted_frames
    assert.deepEqual([s.edge.server.send(id, 'x'), s.edge.server.ping(id), s.edge.server.pong(id)], [false, false, false])
    assert.equal(s.edge.stats.snapshot().ws_transmitted_frames, before, 'nothing counted')
  })
})

describe('WsServer control frames', () => {
  test('ping and pong carry pingApplicationData and count as frames sent; false for an id nobody holds', async (t) => {
    const { s, raw, id } = await withPeer(t, { pingApplicationData: 'edge-7' })
    const before = s.edge.stats.snapshot().ws_transmitted_frames
    assert.equal(s.edge.server.ping(id), true)
    assert.equal(s.edge.server.pong(id), true)
    const [ping, pong] = [await raw.next(), await raw.next()]
    assert.deepEqual([ping?.opcode, ping?.payload.toString(), pong?.opcode, pong?.payload.toString()], [PING, 'edge-7', PONG, 'edge-7'])
    assert.equal(s.edge.stats.snapshot().ws_transmitted_frames - before, 2)
    assert.deepEqual([s.edge.server.ping(id + 1), s.edge.server.pong(id + 1)], [false, false])
  })

  test('probe sends the keepalive mechanism\'s frame, and nothing on a socket no longer open', async (t) => {
    for (const [mechanism, opcode] of [[1, PING], [2, PONG]] as const) {
      const { s, raw, id } = await withPeer(t, { keepaliveMechanism: mechanism, keepaliveTimeout: 60_000 })
      const conn = s.edge.registry.get(id)
      assert.ok(conn !== undefined)
      s.edge.server.probe(conn, Date.now())
      assert.equal((await raw.next())?.opcode, opcode)
      conn.close('local', 1000, 'Normal closure')
      const before = s.edge.stats.snapshot().ws_transmitted_frames
      s.edge.server.probe(conn, Date.now())
      assert.equal((await raw.next())?.opcode, CLOSE, 'the Close, and no probe behind it')
      assert.equal(s.edge.stats.snapshot().ws_transmitted_frames, before)
    }
    const { server, add } = bare()
    assert.doesNotThrow(() => { server.probe(entry(add()), Date.now()) }, 'a connection with no socket is passed over')
  })
})

describe('WsServer lookups and closes', () => {
  test('size, has and info follow the connections this process holds', () => {
    const { server, add } = bare()
    assert.deepEqual([server.size, server.has(1), server.info(1)], [0, false, undefined])
    const a = add('192.0.2.1')
    add()
    assert.equal(server.size, 2)
    assert.equal(server.has(a), true)
    const info = server.info(a)
    assert.deepEqual([info?.id, info?.remoteAddress, info?.state, info?.lastUsedAgo], [a, '192.0.2.1', 'OPEN', 0])
  })

  test('closeById closes by "local" once; closeAll starts every open one\'s close and says how many', () => {
    const { server, add } = bare()
    const ids = [add(), add(), add()]
    assert.equal(server.closeById(ids[0], 4000, 'bye'), true)
    assert.equal(server.closeById(ids[0]), false, 'closing already')
    assert.equal(server.info(ids[0])?.state, 'CLOSING')
    assert.equal(server.closeById(999), false, 'nobody holds it')
    assert.throws(() => server.closeById(ids[1], 1006), { code: 'FST_SIPWS_INVALID_CLOSE' })
    assert.throws(() => server.closeAll(1000, 'x'.repeat(124)), { code: 'FST_SIPWS_INVALID_CLOSE' })
    assert.equal(server.info(ids[1])?.state, 'OPEN', 'a refused call closes nothing')
    assert.equal(server.closeAll(), 2)
    assert.equal(server.closeAll(), 0)
  })

  test('dump: id_hash unless told; a bad order throws; verboseList logs one debug line per dump', async (t) => {
    const { server, add } = bare()
    const ids = [add(), add()]
    assert.deepEqual(server.dump().connections.map((c) => c.id), ids)
    assert.throws(() => server.dump('newest'), { code: 'FST_SIPWS_BAD_DUMP_ORDER' })
    for (const verboseList of [false, true]) {
      const log = loggedApp('debug')
      const { s } = await withPeer(t, { verboseList, keepaliveMechanism: 0 }, log.fastifyOptions)
      // withPeer dumped once already, to learn the id.
      s.edge.server.dump('used_asc')
      const lines = log.entries.filter((e) => e.msg === 'fastify-sip-ws: dump')
      assert.deepEqual(lines.map((e) => [e.order, e.listed, e.wscounter]), verboseList ? [['id_hash', 1, 1], ['used_asc', 1, 1]] : [])
    }
  })

  test('statistics are the counters under their Kamailio names', async (t) => {
    const { s } = await withPeer(t)
    const stats = s.edge.server.statistics()
    assert.deepEqual(stats, s.edge.stats.snapshot())
    assert.deepEqual([stats.ws_current_connections, stats.ws_sip_current_connections, stats.ws_successful_handshakes], [1, 1, 1])
  })
})
