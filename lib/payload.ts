import type { FastifyError } from '@fastify/error'
import { BadConnectionIdError, InvalidArgumentError } from './errors'

/**
 * What `wsSend` and the lwsc client send: a string as a text message, bytes (a Buffer or any Uint8Array)
 * as a binary one.
 */
export type WsData = string | Buffer | Uint8Array

export function isPayload (data: unknown): data is WsData {
  return typeof data === 'string' || data instanceof Uint8Array
}

/** The error for data that is not a `WsData`, or null: every sending call, local, remote or lwsc, uses it. */
export function payloadError (data: unknown): FastifyError | null {
  return isPayload(data) ? null : new InvalidArgumentError('"data"', `expected a string, a Buffer or a Uint8Array, got ${typeof data}`)
}

/** A connection id is an integer; anything else names no connection (Kamailio's RPC says the same). */
export function isConnectionId (id: unknown): id is number {
  return typeof id === 'number' && Number.isInteger(id)
}

/** Throws for an id that is not one: a call that must name a connection (a close) fails loudly. */
export function checkConnectionId (id: unknown, call: string): asserts id is number {
  if (!isConnectionId(id)) throw new BadConnectionIdError(call, typeof id === 'number' ? String(id) : typeof id === 'string' ? JSON.stringify(id) : typeof id)
}
