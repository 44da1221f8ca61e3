import type { FastifyInstance } from 'fastify'
import type { Traffic } from '../connection/stats'
import { InvalidOptionError } from '../errors'
import type { PromRegistryLike } from '../options'
import type { StatsSnapshot } from '../types'
import { EVENT_METRICS, eventMetrics } from './metrics-events'

/** What the metrics read: the Kamailio statistics, and messages and bytes by sub-protocol. */
export interface MetricSources {
  snapshot: () => StatsSnapshot
  traffic: () => Map<string, Traffic>
}

/**
 * Exposes every statistic as a prom-client Gauge named `<prefix><kamailio name>` (as Kamailio's
 * xhttp_prom does), read at scrape time: nothing is counted twice and the hot path is untouched.
 * prom-client is the user's: we load the copy their registry came from.
 *
 * The gauges leave the registry when the app closes, so an app built again on the same registry (tests, hot
 * reload) registers anew, and a closed app's server is not kept alive by their collect functions. Two live
 * apps on one registry need different prefixes: a name already taken fails register naming the prefix.
 * Beside them, counters and histograms of events (metrics-events.ts).
 */
export function registerMetrics (app: FastifyInstance, { registry, prefix }: { registry: PromRegistryLike, prefix: string }, { snapshot, traffic }: MetricSources): void {
  let prom: typeof import('prom-client')
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    prom = require('prom-client') as typeof import('prom-client')
  } catch {
    throw new InvalidOptionError('"metrics.registry"', 'needs the prom-client package installed (npm install prom-client)')
  }
  if (typeof registry?.registerMetric !== 'function' || typeof registry.getSingleMetric !== 'function' || typeof registry.removeSingleMetric !== 'function') {
    throw new InvalidOptionError('"metrics.registry"', 'expected a prom-client Registry')
  }
  const stats = Object.keys(snapshot())
  const taken = [...stats, ...EVENT_METRICS].find((name) => registry.getSingleMetric(prefix + name) !== undefined)
  if (taken !== undefined) {
    throw new InvalidOptionError('"metrics.prefix"', `"${prefix}" names metrics this registry already has (${prefix + taken}): another live app registered them; give each app its own prefix`)
  }
  const registers: [import('prom-client').Registry] = [registry as import('prom-client').Registry]
  const gauges = stats.map((name) => new prom.Gauge({
    name: prefix + name,
    help: `Kamailio websocket statistic ${name}`,
    registers,
    collect () { this.set((snapshot() as Record<string, number>)[name] ?? 0) }
  }))
  const events = eventMetrics(prom, app, prefix, registers, traffic)
  app.addHook('onClose', (_app, done) => {
    events.stop()
    for (const metric of [...gauges, ...events.metrics]) {
      const name = (metric as unknown as { name: string }).name
      // Only ours: the user may have replaced it meanwhile.
      if (registry.getSingleMetric(name) === metric) registry.removeSingleMetric(name)
    }
    done()
  })
}
