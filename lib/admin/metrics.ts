import type { FastifyInstance } from 'fastify'
import { InvalidOptionError } from '../errors'
import type { PromRegistryLike } from '../options'
import type { StatsSnapshot } from '../types'

/**
 * Exposes every statistic as a prom-client Gauge named `<prefix><kamailio name>` (as Kamailio's
 * xhttp_prom does), read at scrape time: nothing is counted twice and the hot path is untouched.
 * prom-client is the user's: we load the copy their registry came from.
 *
 * The gauges leave the registry when the app closes, so an app built again on the same registry (tests, hot
 * reload) registers anew, and a closed app's server is not kept alive by their collect functions. Two live
 * apps on one registry need different prefixes: a name already taken fails register naming the prefix.
 */
export function registerMetrics (app: FastifyInstance, { registry, prefix }: { registry: PromRegistryLike, prefix: string }, snapshot: () => StatsSnapshot): void {
  let Gauge: typeof import('prom-client').Gauge
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    Gauge = (require('prom-client') as typeof import('prom-client')).Gauge
  } catch {
    throw new InvalidOptionError('"metrics.registry"', 'needs the prom-client package installed (npm install prom-client)')
  }
  if (typeof registry?.registerMetric !== 'function' || typeof registry.getSingleMetric !== 'function' || typeof registry.removeSingleMetric !== 'function') {
    throw new InvalidOptionError('"metrics.registry"', 'expected a prom-client Registry')
  }
  const stats = Object.keys(snapshot())
  const taken = stats.find((name) => registry.getSingleMetric(prefix + name) !== undefined)
  if (taken !== undefined) {
    throw new InvalidOptionError('"metrics.prefix"', `"${prefix}" names metrics this registry already has (${prefix + taken}): another live app registered them; give each app its own prefix`)
  }
  const gauges = stats.map((name) => new Gauge({
    name: prefix + name,
    help: `Kamailio websocket statistic ${name}`,
    registers: [registry as import('prom-client').Registry],
    collect () { this.set((snapshot() as Record<string, number>)[name] ?? 0) }
  }))
  app.addHook('onClose', (_app, done) => {
    for (const [i, gauge] of gauges.entries()) {
      const name = prefix + stats[i]
      // Only ours: the user may have replaced it meanwhile.
      if (registry.getSingleMetric(name) === gauge) registry.removeSingleMetric(name)
    }
    done()
  })
}
