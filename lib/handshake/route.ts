import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'

type Strategy = Parameters<FastifyInstance['addConstraintStrategy']>[0]
type Stored = ReturnType<ReturnType<Strategy['storage']>['get']>
import type { Telemetry } from '../observe/telemetry'
import type { Settings } from '../options'
import { isUpgrade, type UpgradeRequests } from './upgrade'

/** The constraint that sends upgrade requests, and only those, to the WebSocket paths' routes. */
export const UPGRADE_CONSTRAINT = 'fastifySipWsUpgrade'
const UPGRADE = 'websocket'
const kOwner = Symbol('fastify-sip-ws.route')

/**
 * find-my-way's constraint strategy: an upgrade request (marked by upgrade.ts in Node's `'upgrade'` event)
 * derives `websocket` and matches the route that asks for it; any other request derives nothing and goes to
 * the app's own routes on the same path. Routes without the constraint still match an upgrade
 * (`mustMatchWhenDerived: false`), so an app's @fastify/websocket routes on other paths keep theirs.
 */
const upgradeStrategy: Strategy = {
  name: UPGRADE_CONSTRAINT,
  mustMatchWhenDerived: false,
  storage () {
    let stored: Stored = null
    return {
      get: (value: string) => value === UPGRADE ? stored : null,
      set: (value: string, store: Stored) => { if (value === UPGRADE) stored = store }
    }
  },
  deriveConstraint: (req) => isUpgrade(req as Parameters<typeof isUpgrade>[0]) ? UPGRADE : undefined,
  validate (value: unknown) {
    if (value !== UPGRADE) throw new TypeError(`${UPGRADE_CONSTRAINT} takes only "${UPGRADE}"`)
  }
}

/** A route path written as it reads: find-my-way takes `:` for a parameter unless doubled. */
function routePath (path: string): string {
  return path.replaceAll(':', '::')
}

function asList<T> (value: T | T[] | undefined): T[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value]
}

/**
 * Makes each WebSocket path a route, for every method (a non-GET upgrade gets its 405 from the handshake
 * checks), constrained to upgrade requests: so the app's hooks, the hooks its plugins add to routes
 * (@fastify/rate-limit, @fastify/helmet, @fastify/under-pressure, @fastify/cors) and the `route` option's
 * run for upgrades as for any route, before the handler plays `xhttp:request`. @fastify/websocket wraps every
 * route's handler to upgrade with its own server; the handler is set again after it, in an `onRoute` hook
 * added after @fastify/websocket's, so these routes upgrade with the plugin's.
 */
export function registerRoutes (app: FastifyInstance, settings: Settings, upgrades: UpgradeRequests, telemetry: Telemetry): void {
  if (!app.hasConstraintStrategy(UPGRADE_CONSTRAINT)) app.addConstraintStrategy(upgradeStrategy)
  app.addHook('onRoute', (route) => {
    if ((route.config as Record<symbol, unknown> | undefined)?.[kOwner] === upgrades) route.handler = upgrades.handle
  })
  // A refusal, whoever sent it (a check, a hook, a plugin's onRequest): an accepted upgrade is hijacked
  // and never gets here. @fastify/websocket closes a refused upgrade's socket only when its own onRequest
  // hook ran, which a hook added before it that refuses (@fastify/under-pressure's, say) prevents; the
  // socket would then stay open and hold `app.close()` for good.
  const answered = (request: FastifyRequest, reply: FastifyReply, done: () => void): void => {
    telemetry.handshakeEnded(request, reply.statusCode, null)
    reply.raw.socket?.destroy()
    done()
  }
  const { onResponse, config, ...routeHooks } = settings.route ?? {}
  for (const path of settings.paths) {
    app.route({
      ...routeHooks,
      method: app.supportedMethods,
      url: routePath(path),
      constraints: { [UPGRADE_CONSTRAINT]: UPGRADE },
      exposeHeadRoute: false,
      config: { ...config, [kOwner]: upgrades },
      onResponse: [...asList(onResponse), answered],
      handler: upgrades.handle
    } as RouteOptions)
  }
  app.addHook('onRequest', upgrades.plainRequest)
}
