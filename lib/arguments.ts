import type { FastifyError } from '@fastify/error'
import { DUMP_ORDERS } from './constants'
import { BadConnectionIdError, BadDumpOrderError, InvalidArgumentError, InvalidCloseError, InvalidDrainError } from './errors'
import type { DumpOrder, WsData } from './types'

// The checks of what callers pass in (users, RPC callers, other nodes), each written once: every path that
// takes the argument, local, remote, lwsc or RPC, uses the same check and so gives the same error.

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

/**
 * A wrong argument as a refusal shows it: a number as written (NaN too, which JSON calls null), a string
 * quoted, null by name, anything else by its type (JSON cannot show a BigInt, and an object may be large).
 */
function shown (value: unknown): string {
  if (typeof value === 'number') return String(value)
  if (typeof value === 'string') return JSON.stringify(value)
  return value === null ? 'null' : typeof value
}

/** Throws for an id that is not one: a call that must name a connection (a close) fails loudly. */
export function checkConnectionId (id: unknown, call: string): asserts id is number {
  if (!isConnectionId(id)) throw new BadConnectionIdError(call, shown(id))
}

/** RFC 6455 §7.4: the codes an endpoint may put in a Close frame it sends. */
function isSendableCloseCode (code: number): boolean {
  return Number.isInteger(code) && ((code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999))
}

/** Throws the typed error for a Close an endpoint may not send (RFC 6455 §7.4, §5.5). */
export function checkClose (code: number, reason: string): void {
  if (!isSendableCloseCode(code)) throw new InvalidCloseError('status', `${String(code)} is not a close code an endpoint may send (1000-1003, 1007-1014, 3000-4999)`)
  if (typeof reason !== 'string' || Buffer.byteLength(reason) > 123) throw new InvalidCloseError('reason', 'must be a string of at most 123 bytes')
}

export function isDumpOrder (order: unknown): order is DumpOrder {
  return typeof order === 'string' && (DUMP_ORDERS as readonly string[]).includes(order)
}

/** `wsDump`'s order (default `id_hash`), or the typed error naming what was given. */
export function dumpOrder (order: unknown = 'id_hash'): DumpOrder {
  if (!isDumpOrder(order)) throw new BadDumpOrderError(String(order))
  return order
}

/** Checks `wsDrain`'s argument, which comes from users and RPC callers. */
export function drainWithin (within: unknown): number {
  if (typeof within !== 'number' || !Number.isInteger(within) || within < 0) {
    throw new InvalidDrainError(`within must be a whole number of milliseconds, 0 or more; got ${shown(within)}`)
  }
  return within
}
