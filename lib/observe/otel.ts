import type { FastifyInstance } from 'fastify'
import { VERSION } from '../constants'
import { InvalidOptionError } from '../errors'
import type { TracerLike } from '../options'
import { closeChannel, handshakeChannel, hookChannel, subscribeApp, type CloseChannelMessage, type HandshakeChannelMessage, type HookChannelMessage } from './channels'

type OtelApi = typeof import('@opentelemetry/api')
type Tracer = import('@opentelemetry/api').Tracer
type SpanContext = import('@opentelemetry/api').SpanContext

/** Span names, as the README lists them. */
export const SPAN_NAMES = { handshake: 'WebSocket handshake', connection: 'WebSocket connection' } as const

function loadApi (): OtelApi {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('@opentelemetry/api') as OtelApi
  } catch {
    throw new InvalidOptionError('"otel"', 'needs the @opentelemetry/api package installed (npm install @opentelemetry/api)')
  }
}

/**
 * OpenTelemetry spans from the diagnostics channels: one per handshake (a SERVER span, child of the
 * client's `traceparent` when it sent one), one per hook call of a connection and one for the connection's
 * whole life, each linked to its handshake's span. Spans are made when their event ends, with the times it
 * began and ended, so nothing is held open while nobody asks; a connection holds only its handshake's span
 * context, until `hookTimeout` after it closed.
 */
export function registerOtel (app: FastifyInstance, options: { tracer?: TracerLike }, hookTimeout: number): void {
  const api = loadApi()
  const tracer = (options.tracer ?? api.trace.getTracer('fastify-sip-ws', VERSION)) as Tracer
  const handshakes = new Map<number, SpanContext>()
  const spans = spanMakers(api, tracer, handshakes, hookTimeout)
  const stops = [
    subscribeApp(handshakeChannel, app, spans.handshake),
    subscribeApp(hookChannel, app, spans.hook),
    subscribeApp(closeChannel, app, spans.close)
  ]
  app.addHook('onClose', (_app, done) => {
    for (const stop of stops) stop()
    handshakes.clear()
    done()
  })
}

/** What makes each span, given the handshakes' span contexts by connection id (which it writes). */
function spanMakers (api: OtelApi, tracer: Tracer, handshakes: Map<number, SpanContext>, hookTimeout: number): {
  handshake: (m: HandshakeChannelMessage) => void
  hook: (m: HookChannelMessage) => void
  close: (m: CloseChannelMessage) => void
} {
  const linksOf = (id: number): Array<{ context: SpanContext }> => {
    const context = handshakes.get(id)
    return context === undefined ? [] : [{ context }]
  }
  return {
    handshake (m) {
      const parent = m.request === null ? api.ROOT_CONTEXT : api.propagation.extract(api.ROOT_CONTEXT, m.request.headers)
      const span = tracer.startSpan(SPAN_NAMES.handshake, {
        kind: api.SpanKind.SERVER,
        startTime: m.startTime,
        attributes: {
          'http.request.method': m.request?.method ?? 'GET',
          'url.path': m.request?.url.split('?')[0] ?? '',
          'http.response.status_code': m.status,
          'client.address': m.remoteAddress,
          'fastify_sip_ws.result': m.result,
          ...(m.id === null ? {} : { 'fastify_sip_ws.connection.id': m.id }),
          ...(m.subProtocol === null ? {} : { 'websocket.subprotocol': m.subProtocol })
        }
      }, parent)
      if (m.status >= 500) span.setStatus({ code: api.SpanStatusCode.ERROR, message: `HTTP ${m.status}` })
      span.end(m.startTime + m.duration)
      if (m.id !== null) handshakes.set(m.id, span.spanContext())
    },
    hook (m) {
      if (m.id === null) return
      const span = tracer.startSpan(m.hook, {
        kind: api.SpanKind.INTERNAL,
        startTime: m.startTime,
        links: linksOf(m.id),
        attributes: { 'fastify_sip_ws.connection.id': m.id, 'fastify_sip_ws.hook.outcome': m.outcome }
      }, api.ROOT_CONTEXT)
      if (m.outcome === 'error') span.setStatus({ code: api.SpanStatusCode.ERROR, message: `${m.hook} hook failed` })
      span.end(m.startTime + m.duration)
    },
    close (m) {
      const span = tracer.startSpan(SPAN_NAMES.connection, {
        kind: api.SpanKind.SERVER,
        startTime: m.createdAt,
        links: linksOf(m.id),
        attributes: {
          'fastify_sip_ws.connection.id': m.id,
          'websocket.subprotocol': m.subProtocol,
          'websocket.close.code': m.code,
          'websocket.close.reason': m.reason,
          'fastify_sip_ws.closed_by': m.by
        }
      }, api.ROOT_CONTEXT)
      if (m.by === 'error') span.setStatus({ code: api.SpanStatusCode.ERROR, message: `closed with ${m.code}` })
      span.end(m.createdAt + m.lifetime)
      // The closed hooks run after this, each within hookTimeout: their spans still find the context.
      setTimeout(() => { handshakes.delete(m.id) }, hookTimeout).unref()
    }
  }
}
