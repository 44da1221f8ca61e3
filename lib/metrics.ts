import { InvalidOptionError } from './errors'
import type { PromRegistryLike } from './options'
import type { StatsSnapshot } from './stats'

/**
 * Exposes every statistic as a prom-client Gauge named `<prefix><kamailio name>` (as Kamailio's
 * xhttp_prom does), read at scrape time: nothing is counted twice and the hot path is untouched.
 * prom-client is the user's: we load the copy their registry came from.
 */
export function registerMetrics (registry: PromRegistryLike, prefix: string, snapshot: () => StatsSnapshot): void {
  let Gauge: typeof import('prom-client').Gauge
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    Gauge = (require('prom-client') as typeof import('prom-client')).Gauge
  } catch {
    throw new InvalidOptionError('"metrics.registry"', 'needs the prom-client package installed (npm install prom-client)')
  }
  if (typeof registry?.registerMetric !== 'function') {
    throw new InvalidOptionError('"metrics.registry"', 'expected a prom-client Registry')
  }
  for (const name of Object.keys(snapshot())) {
    // eslint-disable-next-line no-new
    new Gauge({
      name: prefix + name,
      help: `Kamailio websocket statistic ${name}`,
      registers: [registry as import('prom-client').Registry],
      collect () { this.set(snapshot()[name] ?? 0) }
    })
  }
}
