import assert from 'node:assert/strict'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { describe, test } from 'node:test'
import { propagation, SpanKind, SpanStatusCode } from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import type { FastifyInstance } from 'fastify'
import { channels, type SipWsChannelMessages } from '../../../lib'
import { registerOtel, SPAN_NAMES } from '../../../lib/observe/otel'
import { closed, connect, nextMessage, startApp } from '../../helpers/server'

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const PARENT_SPAN = '00f067aa0ba902b7'

type Name = keyof SipWsChannelMessages

/** Every diagnostics message of `app`, by channel, in the order published. */
function recordChannels (app: () => FastifyInstance | undefined): { seen: Array<{ name: Name, message: SipWsChannelMessages[Name] }>, stop: () => void } {
  const seen: Array<{ name: Name, message: SipWsChannelMessages[Name] }> = []
  const listeners = (Object.values(channels) as Name[]).map((name) => {
    const listener = (message: unknown): void => {
      if ((message as { app: unknown }).app === app()) seen.push({ name, message: message as SipWsChannelMessages[Name] })
    }
    subscribe(name, listener)
    return { name, listener }
  })
  return { seen, stop: () => { for (const { name, listener } of listeners) unsubscribe(name, listener) } }
}

function tracing (): { exporter: InMemorySpanExporter, provider: BasicTracerProvider } {
  const exporter = new InMemorySpanExporter()
  return { exporter, provider: new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }) }
}

describe('OpenTelemetry and the diagnostics channels over a connection\'s life', () => {
  test('a handshake span (child of the client\'s traceparent), hook spans and a connection span linked to it; the channel messages of each step', async (t) => {
    propagation.setGlobalPropagator(new W3CTraceContextPropagator())
    t.after(() => { propagation.disable() })
    const { exporter, provider } = tracing()
    let started: FastifyInstance | undefined
    const recorded = recordChannels(() => started)
    t.after(recorded.stop)
    let closedHookRan: () => void = () => {}
    const closedHook = new Promise<void>((resolve) => { closedHookRan = resolve })
    const { app, url } = await startApp({ otel: { tracer: provider.getTracer('test') } }, (app) => {
      started = app
      app.addWsHook('xhttp:request', async () => { await new Promise((resolve) => setImmediate(resolve)) })
      app.addWsHook('websocket:open', () => {})
      app.addWsHook('websocket:message', (msg) => { app.wsSend(msg.id, `echo ${String(msg.data)}`) })
      app.addWsHook('websocket:closed', async () => { await new Promise((resolve) => setImmediate(resolve)); closedHookRan() })
    })
    t.after(async () => { await app.close() })

    const ws = await connect(url, 'sip', { headers: { traceparent: `00-${TRACE_ID}-${PARENT_SPAN}-01` } })
    for (const text of ['one', 'three']) {
      ws.send(text)
      assert.equal((await nextMessage(ws)).data.toString(), `echo ${text}`)
    }
    ws.close(1000, 'bye')
    await closed(ws)
    await closedHook
    await new Promise((resolve) => setImmediate(resolve))

    // The channels: in order, each with this app, the connection's id and what happened.
    const id = app.wsStats().ws_successful_handshakes
    const steps = recorded.seen.map(({ name, message }) => name === channels.hook ? `hook ${(message as SipWsChannelMessages['fastify-sip-ws:hook']).hook}` : name === channels.message ? `message ${(message as SipWsChannelMessages['fastify-sip-ws:message']).direction}` : name.replace('fastify-sip-ws:', ''))
    assert.deepEqual(steps, [
      'hook xhttp:request', 'handshake', 'open', 'hook websocket:open',
      'message in', 'message out', 'hook websocket:message', 'message in', 'message out', 'hook websocket:message',
      'close', 'hook websocket:closed'
    ])
    const of = <N extends Name>(name: N): Array<SipWsChannelMessages[N]> => recorded.seen.filter((s) => s.name === name).map((s) => s.message as SipWsChannelMessages[N])
    const [handshake] = of(channels.handshake)
    assert.deepEqual([handshake.result, handshake.status, handshake.id, handshake.subProtocol, handshake.remoteAddress], ['accepted', 101, id, 'sip', '127.0.0.1'])
    assert.ok(handshake.duration >= 0 && handshake.startTime <= Date.now() && handshake.request?.url === '/')
    const [open] = of(channels.open)
    assert.deepEqual([open.id, open.subProtocol, open.requestId], [id, 'sip', String(handshake.request?.id)])
    assert.deepEqual(of(channels.message).map((m) => [m.direction, m.size, m.binary, m.id]), [['in', 3, false, id], ['out', 8, false, id], ['in', 5, false, id], ['out', 10, false, id]])
    const [close] = of(channels.close)
    assert.deepEqual([close.id, close.code, close.reason, close.by, close.requestId], [id, 1000, 'bye', 'remote', open.requestId])
    assert.ok(close.lifetime >= 0 && close.createdAt === open.createdAt)
    assert.deepEqual(of(channels.hook).map((h) => [h.hook, h.id, h.outcome]), [
      ['xhttp:request', null, 'ok'], ['websocket:open', id, 'ok'], ['websocket:message', id, 'ok'], ['websocket:message', id, 'ok'], ['websocket:closed', id, 'ok']
    ])

    // The spans: the handshake's under the client's trace; every other one linked to it.
    const spans = exporter.getFinishedSpans()
    const named = (name: string): ReadableSpan[] => spans.filter((s) => s.name === name)
    const [hs] = named(SPAN_NAMES.handshake)
    assert.equal(hs.kind, SpanKind.SERVER)
    assert.equal(hs.spanContext().traceId, TRACE_ID)
    assert.equal(hs.parentSpanContext?.spanId, PARENT_SPAN)
    assert.deepEqual([hs.attributes['http.response.status_code'], hs.attributes['fastify_sip_ws.connection.id'], hs.attributes['websocket.subprotocol'], hs.attributes['url.path']], [101, id, 'sip', '/'])
    const linked = spans.filter((s) => s !== hs)
    assert.deepEqual(linked.map((s) => s.name).sort(), [SPAN_NAMES.connection, 'websocket:closed', 'websocket:message', 'websocket:message', 'websocket:open'])
    for (const span of linked) {
      assert.deepEqual(span.links.map((l) => l.context.spanId), [hs.spanContext().spanId], `${span.name} links the handshake`)
      assert.equal(span.attributes['fastify_sip_ws.connection.id'], id)
    }
    const [life] = named(SPAN_NAMES.connection)
    assert.deepEqual([life.attributes['websocket.close.code'], life.attributes['websocket.close.reason'], life.attributes['fastify_sip_ws.closed_by']], [1000, 'bye', 'remote'])
    assert.equal(life.status.code, SpanStatusCode.UNSET)
  })

  test('a refused handshake is one span with its status, and nothing after it', async (t) => {
    const { exporter, provider } = tracing()
    const { app, url } = await startApp({ otel: { tracer: provider.getTracer('test') } }, (app) => {
      app.addWsHook('xhttp:request', async (_request, reply) => await reply.code(403).send())
    })
    t.after(async () => { await app.close() })
    await assert.rejects(connect(url), /unexpected response 403/)
    await new Promise((resolve) => setImmediate(resolve))
    const spans = exporter.getFinishedSpans()
    assert.deepEqual(spans.map((s) => [s.name, s.attributes['http.response.status_code'], s.attributes['fastify_sip_ws.result'], s.status.code]), [[SPAN_NAMES.handshake, 403, 'refused', SpanStatusCode.UNSET]])
    assert.equal(spans[0].parentSpanContext, undefined, 'no traceparent: a root span')
  })

  test('registerOtel stops listening when its app closes', async () => {
    const { exporter, provider } = tracing()
    const first = await startApp({ otel: { tracer: provider.getTracer('test') } })
    await first.app.close()
    const second = await startApp()
    try {
      const ws = await connect(second.url)
      ws.terminate()
      await new Promise((resolve) => setImmediate(resolve))
    } finally { await second.app.close() }
    assert.deepEqual(exporter.getFinishedSpans(), [], 'the closed app\'s integration saw nothing of the other app')
    assert.equal(typeof registerOtel, 'function')
  })
})
