import type { FastifyRequest } from 'fastify'
import type { Socket } from 'node:net'
import { isInjected } from './injected'
import type { ConnectionAddress } from '../types'

/**
 * The client's address as Fastify sees it. Behind a proxy that Fastify's `trustProxy` trusts, `request.ip`
 * is the client named by X-Forwarded-For; otherwise it is the socket's peer. An injected request
 * (@fastify/websocket's `injectWS`) has no network socket, and Fastify's `request.ip` would throw reading
 * it under `trustProxy`: its address is empty.
 */
export function clientAddress (request: FastifyRequest): string {
  if (isInjected(request.raw)) return ''
  return request.ip ?? ''
}

/**
 * Both ends of a new connection: the client (the proxy's client when Fastify trusts the proxy) and the
 * socket's own peer beside it. X-Forwarded-For carries no port, so a forwarded client's port is 0
 * (unknown). The transport is `wss` when the socket is TLS or a trusted proxy's X-Forwarded-Proto says
 * https (or wss), as Fastify's `request.protocol` reads them.
 */
export function peerAddress (request: FastifyRequest, socket: Socket | null): ConnectionAddress {
  const socketAddress = socket?.remoteAddress ?? ''
  const socketPort = socket?.remotePort ?? 0
  const remoteAddress = clientAddress(request)
  const forwarded = remoteAddress !== socketAddress
  const protocol = request.protocol as string | undefined
  return {
    remoteAddress,
    remotePort: forwarded ? 0 : socketPort,
    socketAddress,
    socketPort,
    localAddress: socket?.localAddress ?? '',
    localPort: socket?.localPort ?? 0,
    transport: protocol === 'https' || protocol === 'wss' ? 'wss' : 'ws'
  }
}
