import type { FastifyInstance } from 'fastify'

/** The health route's path, for load balancers. */
export const HEALTH_PATH = '/health'

/**
 * `GET /health`: 200 `{"status":"ok"}` while this node takes new connections, 503 `{"status":"draining"}`
 * with Retry-After once SIGTERM started its drain, so a load balancer's health check takes it out of the
 * pool before its connections close (README, "Rolling restarts").
 */
export function serveHealth (app: FastifyInstance, draining: () => boolean): void {
  app.get(HEALTH_PATH, async (_request, reply) => {
    reply.header('cache-control', 'no-store')
    if (!draining()) return await reply.send({ status: 'ok' })
    return await reply.code(503).header('retry-after', '5').send({ status: 'draining' })
  })
}
