import type { FastifyReply, FastifyRequest } from 'fastify'
import { supportedHeaders } from './handshake'
import type { Hooks } from './hooks'
import type { WsServer } from './server'

function pathOf (url: string): string {
  const query = url.indexOf('?')
  const path = query === -1 ? url : url.slice(0, query)
  // Kamailio's lwsc asks for `//` when given `ws://host:port/`; Kamailio's own server takes any path.
  return path.includes('//') ? path.replace(/\/{2,}/g, '/') : path
}

/**
 * The `onRequest` hook that plays Kamailio's `event_route[xhttp:request]`: on a WebSocket path, an upgrade
 * request runs the `xhttp:request` hooks and then the handshake. It runs before routing has any say, so
 * the app may still serve its own HTTP routes on the same path (a page at `/`, say); a plain GET on a
 * WebSocket path with no route of its own gets 400, as a WebSocket endpoint would answer it.
 */
export function upgradeHook (server: WsServer, hooks: Hooks) {
  const { paths, enabledProtocols } = server.settings
  return function onRequest (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void {
    if (!paths.has(pathOf(request.url))) return done()
    if (request.ws !== true) {
      if (request.is404 && request.method === 'GET') {
        void reply.code(400).headers(supportedHeaders(enabledProtocols)).type('text/plain; charset=utf-8')
          .send('This path expects a WebSocket upgrade (Upgrade: websocket, Connection: Upgrade)')
        return
      }
      return done()
    }
    if (!hooks.has('xhttp:request')) {
      server.upgrade(request, reply)
      return
    }
    hooks.runRequest('xhttp:request', request, reply).then((refused) => {
      if (!refused && !reply.sent) server.upgrade(request, reply)
    }, done)
  }
}
