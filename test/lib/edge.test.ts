import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import Fastify from 'fastify'
import pino from 'pino'
import type { WsClosedEvent } from '../../lib'
import type { IdSource } from '../../lib/cluster/seam'
import { SingleProcess } from '../../lib/cluster/single-process'
import { buildEdge } from '../../lib/edge'
import { Hooks } from '../../lib/hooks'
import { Telemetry } from '../../lib/observe/telemetry'
import { resolveSettings } from '../../lib/options'
import { startEdge } from '../helpers/edge'
import { frame, rawWebSocket } from '../helpers/frames'
import { within } from '../helpers/pool'
import { handshakeOutcome, closed, connect, loggedApp, nextMessage } from '../helpers/server'

// Timers never fire early; on a loaded 2-core machine they may fire this much late.
const LATE = 1500

/** One process alone, whose ids start at 1001 and whose released ids are recorded. */
class Numbered extends SingleProcess {
  readonly released: number[] = []
  private last = 1000
  override readonly ids: IdSource = { nextId: () => ++this.last, released: (id) => { this.released.push(id) } }
}

describe('buildEdge', () => {
  test('returns the parts the plugin needs; its keepalive sweeps from the start', async () => {
    const lines: Array<{ msg?: string }> = []
    let swept: () => void = () => {}
    const sweep = new Promise<void>((resolve) => { swept = resolve })
    const log = pino({ level: 'debug' }, {
      write: (line: string) => {
        const entry = JSON.parse(line) as { msg?: string }
        lines.push(entry)
        if (entry.msg === 'fastify-sip-ws: keepalive sweep') swept()
      }
    })
    const edge = buildEdge(resolveSettings({ keepaliveInterval: 100, verboseList: true }), new Hooks(log), new SingleProcess(), log, new Telemetry(Fastify(), log, 'info'))
    try {
      assert.deepEqual(Object.keys(edge).sort(), ['keepalive', 'lifecycle', 'registry', 'server', 'stats', 'upgrades'])
      assert.deepEqual([edge.server.size, edge.registry.size, edge.lifecycle.enabled], [0, 0, true])
      await within(sweep, 100 + LATE, () => 'no keepalive sweep')
    } finally {
      edge.keepalive.stop()
    }
  })

  test('the parts are wired to one another: a handshake is admitted by the lifecycle, registered, counted and served', async (t) => {
    const s = await startEdge({ subProtocols: ['sip', 'kmsg'] }, (app, hooks) => {
      hooks.add(app, 'websocket:message', (m) => { s.edge.server.send(m.id, `echo ${String(m.data)}`) })
    })
    t.after(s.close)
    const ws = await connect(s.url, 'kmsg')
    const [info] = s.edge.server.dump().connections
    assert.deepEqual([s.edge.registry.size, info.subProtocol], [1, 'kmsg'])
    ws.send('hi')
    assert.equal(String((await nextMessage(ws)).data), 'echo hi')
    const stats = s.edge.stats.snapshot()
    assert.deepEqual([stats.ws_kmsg_successful_handshakes, stats.ws_kmsg_received_frames, stats.ws_kmsg_transmitted_frames], [1, 1, 1])
    s.edge.lifecycle.setEnabled(false)
    assert.equal(await handshakeOutcome(s.url), '503 Retry-After undefined', 'the handshake path asks the lifecycle')
    s.edge.lifecycle.setEnabled(true)
    assert.equal(await handshakeOutcome(s.url), 'accepted')
    ws.terminate()
  })

  test('ids come from the cluster given, and go back to it when their connection closes', async (t) => {
    const cluster = new Numbered()
    let onClosed: (e: WsClosedEvent) => void = () => {}
    const firstClosed = new Promise<WsClosedEvent>((resolve) => { onClosed = resolve })
    const s = await startEdge({}, (app, hooks) => { hooks.add(app, 'websocket:closed', (e) => { onClosed(e) }) }, undefined, cluster)
    t.after(s.close)
    await connect(s.url)
    const b = await connect(s.url)
    assert.deepEqual(s.edge.server.dump().connections.map((c) => c.id), [1001, 1002])
    assert.deepEqual(cluster.released, [])
    assert.equal(s.edge.server.closeById(1001), true)
    assert.equal((await within(firstClosed, 5000, () => 'no closed event')).id, 1001)
    assert.deepEqual(cluster.released, [1001])
    assert.equal(s.edge.registry.size, 1)
    b.terminate()
  })

  test('keepalive probes through the server and closes a silent peer with 1001 "Keepalive timeout"', async (t) => {
    let onClosed: (e: WsClosedEvent) => void = () => {}
    const gone = new Promise<WsClosedEvent>((resolve) => { onClosed = resolve })
    const s = await startEdge({ keepaliveTimeout: 1000, keepaliveInterval: 100, pingApplicationData: 'edge', closeTimeout: 200 }, (app, hooks) => {
      hooks.add(app, 'websocket:closed', (e) => { onClosed(e) })
    })
    t.after(s.close)
    const raw = await rawWebSocket(s.port)
    // ws answers Pings by itself; a raw peer answers nothing.
    const ping = await raw.next(1000 + LATE)
    assert.deepEqual([ping?.opcode, ping?.payload.toString()], [9, 'edge'])
    assert.deepEqual(await raw.closeFrame(1000 + LATE), { code: 1001, reason: 'Keepalive timeout' })
    const event = await within(gone, 200 + LATE, () => 'no closed event')
    assert.deepEqual([event.by, event.code, event.reason], ['keepalive', 1001, 'Keepalive timeout'])
    assert.equal(s.edge.stats.snapshot().ws_local_closed_connections, 1)
  })

  test('hooks that fall behind pause the socket\'s reads and resume them, each logged with the connection', async (t) => {
    const log = loggedApp('debug')
    let release: () => void = () => {}
    const gate = new Promise<void>((resolve) => { release = resolve })
    const got: string[] = []
    const sent = Array.from({ length: 20 }, (_, i) => `m${i}:${'x'.repeat(100)}`)
    let allIn: () => void = () => {}
    const delivered = new Promise<void>((resolve) => { allIn = resolve })
    const s = await startEdge({ hookQueueLimit: 1024 }, (app, hooks) => {
      hooks.add(app, 'websocket:message', async (m) => {
        await gate
        if (got.push(String(m.data)) === sent.length) allIn()
      })
    }, log.fastifyOptions)
    t.after(s.close)
    const raw = await rawWebSocket(s.port)
    raw.write(Buffer.concat(sent.map((m) => frame(1, m))))
    const paused = await within(log.next('hooks behind; pausing reads'), 5000, () => 'never paused')
    assert.equal(paused.id, s.edge.server.dump().connections[0].id)
    assert.ok((paused.bytes as number) > 1024, `paused past the limit, at ${String(paused.bytes)} bytes`)
    release()
    const resumed = await within(log.next('hooks caught up; resuming reads'), 5000, () => 'never resumed')
    assert.equal(resumed.id, paused.id)
    await within(delivered, 5000, () => `${got.length} of ${sent.length} delivered`)
    assert.deepEqual(got, sent, 'nothing lost, in order')
  })

  test('shutdown through the lifecycle closes every connection with 1001 through the server, then refuses handshakes', async (t) => {
    const s = await startEdge()
    t.after(s.close)
    const clients = await Promise.all([connect(s.url), connect(s.url, 'msrp')])
    const seen = Promise.all(clients.map(closed))
    await within(s.edge.lifecycle.shutdown(), 5000 + LATE, () => 'shutdown did not finish')
    for (const r of await seen) assert.deepEqual(r, { code: 1001, reason: 'Going Away' })
    assert.equal(s.edge.registry.size, 0)
    assert.equal(await handshakeOutcome(s.url), '503 Retry-After 5')
  })
})
