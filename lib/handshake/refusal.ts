import type { FastifyReply, FastifyRequest } from 'fastify'
import { STATUS_CODES, type OutgoingHttpHeaders } from 'node:http'
import type { Stats } from '../connection/stats'
import { clientAddress } from './peer'

/** A refused handshake: the HTTP status, extra headers and a one-line text body saying why. */
export interface Refusal {
  status: number
  headers?: OutgoingHttpHeaders
  message: string
}

/**
 * Answers an upgrade request with an HTTP refusal; the socket is closed after it. A 500 is our own (or a
 * hook's) mistake: the log says what it was, the client only that it was ours.
 */
export function refuse (request: FastifyRequest, reply: FastifyReply, refusal: Refusal, stats: Stats): void {
  if (reply.sent) return
  stats.handshakeFailed()
  const fields = { status: refusal.status, reason: refusal.message, remoteAddress: clientAddress(request) }
  const internal = refusal.status === 500
  if (internal) request.log.error(fields, 'fastify-sip-ws: handshake failed: %s', refusal.message)
  else request.log.info(fields, 'fastify-sip-ws: handshake refused')
  void reply.code(refusal.status).headers({ ...refusal.headers, Connection: 'close' }).type('text/plain; charset=utf-8')
    .send(internal ? 'Internal Server Error' : refusal.message)
}

/** The refusal as raw HTTP/1.1 bytes, for a socket that no Fastify reply owns. */
export function rawResponse ({ status, headers = {}, message }: Refusal): string {
  const body = Buffer.from(message)
  const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`]
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${String(value)}`)
  lines.push('Connection: close', 'Content-Type: text/plain; charset=utf-8', `Content-Length: ${body.length}`)
  return lines.join('\r\n') + '\r\n\r\n' + message
}
