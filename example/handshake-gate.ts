import type { FastifyReply, FastifyRequest } from 'fastify'

/**
 * Kamailio's sample `event_route[xhttp:request]`: a WebSocket handshake must name a Host (one of ours when
 * a list is given) and, when origins are listed, come from one of them. A browser always sends Origin, so
 * a handshake without one is refused too once a list is set.
 */
export function handshakeGate (allowedHosts: string[] | undefined, allowedOrigins: string[] | undefined) {
  const hosts = allowedHosts === undefined ? null : new Set(allowedHosts.map((h) => h.toLowerCase()))
  const origins = allowedOrigins === undefined ? null : new Set(allowedOrigins.map((o) => o.replace(/\/+$/, '').toLowerCase()))
  return async function gate (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const host = request.headers.host
    if (host === undefined || host === '' || (hosts !== null && !hosts.has(host.toLowerCase()) && !hosts.has(hostName(host)))) {
      request.log.warn({ host }, 'websocket refused: bad Host')
      await reply.code(403).type('text/plain; charset=utf-8').send('Forbidden')
      return
    }
    const origin = request.headers.origin
    if (origins !== null && (origin === undefined || !origins.has(origin.toLowerCase()))) {
      request.log.warn({ origin }, 'websocket refused: origin not allowed')
      await reply.code(403).type('text/plain; charset=utf-8').send('Forbidden')
    }
  }
}

/** `example.com:8080` → `example.com`, `[::1]:8080` → `[::1]`. */
function hostName (host: string): string {
  return host.toLowerCase().replace(/:\d+$/, '')
}
