import type { FastifyInstance } from 'fastify'
import type { Traffic } from '../connection/stats'
import { closeChannel, handshakeChannel, hookChannel, subscribeApp, type CloseChannelMessage, type HandshakeChannelMessage, type HookChannelMessage } from '../observe/channels'

type PromClient = typeof import('prom-client')
type Metric = import('prom-client').Metric

/** Seconds: a hook is expected in milliseconds, a connection to last from seconds to days. */
const HOOK_BUCKETS = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10]
const LIFETIME_BUCKETS = [1, 10, 60, 300, 1800, 3600, 4 * 3600, 24 * 3600]

/** The names this file registers, so the prefix can be checked before any is. */
export const EVENT_METRICS = [
  'handshakes_total', 'messages_received_total', 'messages_sent_total', 'received_bytes_total', 'sent_bytes_total',
  'hook_duration_seconds', 'connection_duration_seconds'
] as const

/**
 * Beyond Kamailio's gauges: counters and histograms of what happens. Messages and bytes are read from the
 * statistics at scrape time, so the message path only bumps fields; handshakes, hook durations and
 * connection lifetimes come from the diagnostics channels, one observation per event. Returns the metrics
 * and what unsubscribes them.
 */
export function eventMetrics (prom: PromClient, app: FastifyInstance, prefix: string, registers: [import('prom-client').Registry], traffic: () => Map<string, Traffic>): { metrics: Metric[], stop: () => void } {
  const handshakes = new prom.Counter({ name: `${prefix}handshakes_total`, help: 'Upgrade requests answered, by result (accepted, refused, timed_out) and HTTP status', labelNames: ['result', 'status'], registers })
  const fromTraffic = (name: string, help: string, field: keyof Traffic): Metric => new prom.Counter({
    name: prefix + name,
    help,
    labelNames: ['sub_protocol'],
    registers,
    collect () {
      this.reset()
      for (const [subProtocol, counts] of traffic()) this.inc({ sub_protocol: subProtocol }, counts[field])
    }
  })
  const hooks = new prom.Histogram({ name: `${prefix}hook_duration_seconds`, help: 'How long each hook call took, by hook and outcome', labelNames: ['hook', 'outcome'], buckets: HOOK_BUCKETS, registers })
  const lifetimes = new prom.Histogram({ name: `${prefix}connection_duration_seconds`, help: 'How long connections lasted, by sub-protocol and who closed them', labelNames: ['sub_protocol', 'closed_by'], buckets: LIFETIME_BUCKETS, registers })
  const metrics = [
    handshakes,
    fromTraffic('messages_received_total', 'Data messages received, by sub-protocol', 'messagesReceived'),
    fromTraffic('messages_sent_total', 'Data messages sent with wsSend, by sub-protocol', 'messagesSent'),
    fromTraffic('received_bytes_total', 'Payload bytes of the messages received, by sub-protocol', 'bytesReceived'),
    fromTraffic('sent_bytes_total', 'Payload bytes of the messages sent, by sub-protocol', 'bytesSent'),
    hooks,
    lifetimes
  ]
  const stops = [
    subscribeApp<HandshakeChannelMessage>(handshakeChannel, app, (m) => { handshakes.inc({ result: m.result, status: String(m.status) }) }),
    subscribeApp<HookChannelMessage>(hookChannel, app, (m) => { hooks.observe({ hook: m.hook, outcome: m.outcome }, m.duration / 1000) }),
    subscribeApp<CloseChannelMessage>(closeChannel, app, (m) => { lifetimes.observe({ sub_protocol: m.subProtocol, closed_by: m.by }, m.lifetime / 1000) })
  ]
  return { metrics, stop: () => { for (const stop of stops) stop() } }
}
