import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Registry as PromRegistry } from 'prom-client'
import Fastify from 'fastify'
import sipWs from '../../../lib'
import { Stats } from '../../../lib/connection/stats'
import { entry, registry } from '../../helpers/connections'
import { frame, rawWebSocket } from '../../helpers/frames'
import { handshakeLines, rawRequest, request } from '../../helpers/raw'
import { closed, connect, nextMessage, startApp } from '../../helpers/server'

describe('statistics', () => {
  test('a scripted scenario gives exact Kamailio counters', async () => {
    let closes = 0
    let allClosed: () => void = () => {}
    const done = new Promise<void>((resolve) => { allClosed = resolve })
    const s = await startApp({ subProtocols: ['sip', 'msrp', 'kmsg'] }, (app) => {
      app.addWsHook('websocket:message', (m) => { app.wsSend(m.id, 'ack') })
      app.addWsHook('websocket:closed', () => { if (++closes === 4) allClosed() })
    })
    try {
      // 2 failed handshakes.
      for (const extra of [{ 'Sec-WebSocket-Version': '8' }, { 'Sec-WebSocket-Protocol': 'nope' }] as Array<Record<string, string>>) {
        const r = await rawRequest(s.port, request(handshakeLines(s.port, extra)))
        r.socket.destroy()
      }
      const sip1 = await connect(s.url, 'sip')
      const sip2 = await connect(s.url, 'sip')
      const msrp = await connect(s.url, 'msrp')
      const bad = await rawWebSocket(s.port, 'kmsg')
      // sip1: 3 messages in, 3 acks out; msrp: 1 in, 1 out.
      for (let i = 0; i < 3; i++) { sip1.send(`m${i}`); await nextMessage(sip1) }
      msrp.send('x'); await nextMessage(msrp)
      const peak = s.app.wsStats()
      assert.equal(peak.ws_current_connections, 4)
      assert.equal(peak.ws_sip_current_connections, 2)
      // Closes: sip1 by the peer, sip2 by us, kmsg by a protocol error, msrp by the peer.
      sip1.close()
      s.app.wsClose(s.app.wsDump().connections[1].id)
      bad.write(frame(1, 'x', { mask: false }))
      msrp.close()
      await closed(sip2)
      await done
      const st = s.app.wsStats()
      assert.deepEqual({
        cur: st.ws_current_connections,
        max: st.ws_max_concurrent_connections,
        ok: st.ws_successful_handshakes,
        failedHs: st.ws_failed_handshakes,
        rx: st.ws_received_frames,
        tx: st.ws_transmitted_frames,
        local: st.ws_local_closed_connections,
        remote: st.ws_remote_closed_connections,
        failed: st.ws_failed_connections
      }, { cur: 0, max: 4, ok: 4, failedHs: 2, rx: 4, tx: 4, local: 1, remote: 2, failed: 1 })
      assert.deepEqual([st.ws_sip_successful_handshakes, st.ws_sip_max_concurrent_connections, st.ws_sip_received_frames, st.ws_sip_transmitted_frames, st.ws_sip_remote_closed_connections, st.ws_sip_local_closed_connections], [2, 2, 3, 3, 1, 1])
      assert.deepEqual([st.ws_msrp_successful_handshakes, st.ws_msrp_received_frames, st.ws_msrp_transmitted_frames, st.ws_msrp_remote_closed_connections], [1, 1, 1, 1])
      assert.deepEqual([st.ws_kmsg_successful_handshakes, st.ws_kmsg_failed_connections, st.ws_kmsg_current_connections], [1, 1, 0])
    } finally { await s.app.close() }
  })

  test('Prometheus: gauges in the registry passed in, read at scrape time', async () => {
    const registry = new PromRegistry()
    const s = await startApp({ metrics: { registry } })
    try {
      const ws = await connect(s.url)
      const text = await registry.metrics()
      assert.match(text, /^# TYPE websocket_ws_current_connections gauge$/m)
      assert.match(text, /^websocket_ws_current_connections 1$/m)
      assert.match(text, /^websocket_ws_sip_successful_handshakes 1$/m)
      ws.terminate()
    } finally { await s.app.close() }
  })

  test('a metrics registry that is not one fails register naming the option', async () => {
    const app = Fastify()
    await assert.rejects(async () => { await app.register(sipWs, { metrics: { registry: {} as never } }); await app.ready() }, /"metrics.registry"/)
    await app.close()
  })
})

describe('dump at scale (registry only)', () => {
  test('1,000,000 entries: every order returns the right 50 and the flag, without sorting', () => {
    const r = registry()
    const n = 1_000_000
    for (let i = 0; i < n; i++) {
      r.add(entry(r.nextId(), i, { remotePort: i & 0xffff }))
    }
    const byId = r.dump('id_hash', n)
    assert.deepEqual([byId.connections.length, byId.wscounter, byId.truncated, byId.connections[0].id, byId.connections[49].id], [50, n, true, 1, 50])
    assert.deepEqual(r.dump('used_asc', n).connections.slice(0, 2).map((c) => c.id), [n, n - 1])
    assert.deepEqual(r.dump('used_desc', n).connections.slice(0, 2).map((c) => c.id), [1, 2])
  })
})

describe('Stats', () => {
  const PER_PROTOCOL = ['current_connections', 'max_concurrent_connections', 'failed_connections', 'local_closed_connections', 'remote_closed_connections', 'received_frames', 'transmitted_frames', 'successful_handshakes']
  const TOTALS = [...PER_PROTOCOL, 'failed_handshakes', 'handshake_timeouts']

  test('the snapshot has Kamailio\'s names, all zero at first: totals, sip and msrp always, each other protocol once', () => {
    const snapshot = new Stats(['kmsg', 'sip', 'kmsg']).snapshot()
    const expected = [...TOTALS.map((n) => `ws_${n}`), ...['sip', 'msrp', 'kmsg'].flatMap((p) => PER_PROTOCOL.map((n) => `ws_${p}_${n}`))]
    assert.deepEqual(Object.keys(snapshot).sort(), expected.sort())
    assert.deepEqual(new Set(Object.values(snapshot)), new Set([0]))
    assert.equal('ws_sip_failed_handshakes' in snapshot, false, 'handshake failures have no sub-protocol')
  })

  test('forProtocol gives one counters object per name; a new name is reported from then on', () => {
    const stats = new Stats([])
    assert.equal(stats.forProtocol('sip'), stats.forProtocol('sip'))
    assert.notEqual(stats.forProtocol('sip'), stats.forProtocol('msrp'))
    assert.equal('ws_json_received_frames' in stats.snapshot(), false)
    stats.received(stats.forProtocol('json'))
    assert.deepEqual([stats.snapshot().ws_json_received_frames, stats.snapshot().ws_received_frames], [1, 1])
  })

  test('opened and closed: current and max per protocol and in total, each close counted for who closed', () => {
    const stats = new Stats(['kmsg'])
    const [sip, msrp, kmsg] = ['sip', 'msrp', 'kmsg'].map((p) => stats.forProtocol(p))
    stats.opened(sip)
    stats.opened(sip)
    stats.closed(sip, 'remote')
    stats.closed(sip, 'local')
    // The peaks do not overlap: total max 2 from sip, then 2 from msrp and kmsg together.
    stats.opened(msrp)
    stats.opened(kmsg)
    stats.closed(msrp, 'keepalive')
    stats.closed(kmsg, 'error')
    stats.opened(kmsg)
    const s = stats.snapshot()
    assert.deepEqual([s.ws_successful_handshakes, s.ws_current_connections, s.ws_max_concurrent_connections], [5, 1, 2])
    assert.deepEqual([s.ws_sip_successful_handshakes, s.ws_sip_current_connections, s.ws_sip_max_concurrent_connections], [2, 0, 2])
    assert.deepEqual([s.ws_msrp_max_concurrent_connections, s.ws_kmsg_max_concurrent_connections, s.ws_kmsg_current_connections], [1, 1, 1])
    // remote → remote_closed; error → failed; local and keepalive → local_closed (Kamailio counts its own closes there).
    assert.deepEqual([s.ws_remote_closed_connections, s.ws_local_closed_connections, s.ws_failed_connections], [1, 2, 1])
    assert.deepEqual([s.ws_sip_remote_closed_connections, s.ws_sip_local_closed_connections], [1, 1])
    assert.deepEqual([s.ws_msrp_local_closed_connections, s.ws_kmsg_failed_connections, s.ws_kmsg_local_closed_connections], [1, 1, 0])
  })

  test('frames in and out, per protocol and in total; handshake failures and timeouts in total only', () => {
    const stats = new Stats([])
    const sip = stats.forProtocol('sip')
    const msrp = stats.forProtocol('msrp')
    for (let i = 0; i < 4; i++) stats.received(sip)
    stats.transmitted(sip)
    stats.transmitted(msrp)
    stats.handshakeFailed()
    stats.handshakeFailed()
    stats.handshakeTimedOut()
    const s = stats.snapshot()
    assert.deepEqual([s.ws_received_frames, s.ws_transmitted_frames, s.ws_sip_received_frames, s.ws_sip_transmitted_frames, s.ws_msrp_transmitted_frames], [4, 2, 4, 1, 1])
    assert.deepEqual([s.ws_failed_handshakes, s.ws_handshake_timeouts, s.ws_successful_handshakes], [2, 1, 0])
  })

  test('a snapshot is a copy: changing it changes nothing', () => {
    const stats = new Stats([])
    const s = stats.snapshot() as Record<string, number>
    s.ws_received_frames = 99
    stats.received(stats.forProtocol('sip'))
    assert.equal(stats.snapshot().ws_received_frames, 1)
  })
})
