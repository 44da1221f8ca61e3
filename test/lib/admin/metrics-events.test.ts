import assert from 'node:assert/strict'
import { once } from 'node:events'
import net from 'node:net'
import { describe, test } from 'node:test'
import { Registry as PromRegistry } from 'prom-client'
import { EVENT_METRICS } from '../../../lib/admin/metrics-events'
import { hookChannel } from '../../../lib/observe/channels'
import { closed, connect, nextMessage, startApp } from '../../helpers/server'

/** The value of one sample line, `name{labels} value`, or undefined. */
function sample (text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

describe('Prometheus counters and histograms', () => {
  test('a scrape after connections live and die: handshakes by result, messages and bytes by sub-protocol, hook durations, lifetimes', async (t) => {
    const registry = new PromRegistry()
    const { app, port, url } = await startApp({ subProtocols: ['sip', 'kmsg'], handshakeTimeout: 200, metrics: { registry } }, (app) => {
      app.addWsHook('xhttp:request', async (request, reply) => { if (request.url.includes('deny')) await reply.code(403).send() })
      app.addWsHook('websocket:message', (msg) => { app.wsSend(msg.id, msg.binary ? msg.data : `réponse ${msg.data}`) })
    })
    t.after(async () => { await app.close() })
    const sip = await connect(url, 'sip')
    for (const text of ['a', 'bb']) { sip.send(text); await nextMessage(sip) }
    const kmsg = await connect(url, 'kmsg')
    kmsg.send(Buffer.alloc(100))
    await nextMessage(kmsg)
    await assert.rejects(connect(`${url}/?deny`), /unexpected response 403/)
    await assert.rejects(connect(url, 'msrp'), /unexpected response 400/)
    const silent = net.connect(port, '127.0.0.1')
    silent.resume()
    await once(silent, 'close')
    sip.close()
    await closed(sip)
    kmsg.terminate()
    await closed(kmsg)
    await new Promise((resolve) => setImmediate(resolve))

    const text = await registry.metrics()
    assert.equal(sample(text, 'websocket_handshakes_total{result="accepted",status="101"}'), 2)
    assert.equal(sample(text, 'websocket_handshakes_total{result="refused",status="403"}'), 1)
    assert.equal(sample(text, 'websocket_handshakes_total{result="refused",status="400"}'), 1)
    assert.equal(sample(text, 'websocket_handshakes_total{result="timed_out",status="408"}'), 1)
    assert.equal(sample(text, 'websocket_messages_received_total{sub_protocol="sip"}'), 2)
    assert.equal(sample(text, 'websocket_messages_sent_total{sub_protocol="sip"}'), 2)
    assert.equal(sample(text, 'websocket_received_bytes_total{sub_protocol="sip"}'), 3)
    // "réponse " is 9 bytes in UTF-8 for 8 characters: bytes, not characters.
    assert.equal(sample(text, 'websocket_sent_bytes_total{sub_protocol="sip"}'), 9 + 1 + 9 + 2)
    assert.equal(sample(text, 'websocket_received_bytes_total{sub_protocol="kmsg"}'), 100)
    assert.equal(sample(text, 'websocket_sent_bytes_total{sub_protocol="kmsg"}'), 100)
    assert.equal(sample(text, 'websocket_messages_received_total{sub_protocol="msrp"}'), 0)
    assert.equal(sample(text, 'websocket_hook_duration_seconds_count{hook="websocket:message",outcome="ok"}'), 3)
    assert.equal(sample(text, 'websocket_hook_duration_seconds_count{hook="xhttp:request",outcome="ok"}'), 4, 'sip, kmsg, the denied one and the msrp one')
    assert.ok((sample(text, 'websocket_hook_duration_seconds_sum{hook="websocket:message",outcome="ok"}') ?? -1) >= 0)
    assert.equal(sample(text, 'websocket_connection_duration_seconds_count{sub_protocol="sip",closed_by="remote"}'), 1)
    assert.equal(sample(text, 'websocket_connection_duration_seconds_count{sub_protocol="kmsg",closed_by="remote"}'), 1)
    assert.equal(sample(text, 'websocket_connection_duration_seconds_bucket{le="+Inf",sub_protocol="sip",closed_by="remote"}'), 1)
    // Beside them, Kamailio's gauges as before.
    assert.equal(sample(text, 'websocket_ws_successful_handshakes'), 2)
    assert.match(text, /# TYPE websocket_handshakes_total counter/)
    assert.match(text, /# TYPE websocket_hook_duration_seconds histogram/)
  })

  test('they leave with the app, unsubscribed, and the names count as taken while it lives', async () => {
    const registry = new PromRegistry()
    const { app } = await startApp({ metrics: { registry } })
    for (const name of EVENT_METRICS) assert.notEqual(registry.getSingleMetric(`websocket_${name}`), undefined, name)
    assert.equal(hookChannel.hasSubscribers, true)
    await app.close()
    for (const name of EVENT_METRICS) assert.equal(registry.getSingleMetric(`websocket_${name}`), undefined, name)
    assert.equal(hookChannel.hasSubscribers, false, 'nobody left listening')
  })
})
