import { createHash, timingSafeEqual } from 'node:crypto'
import { BlockList, isIP } from 'node:net'
import type { XhttpRequestHook } from '../lib'

/**
 * Who may use the example's /RPC: anyone with the token once RPC_TOKEN is set, else only this machine.
 * The plugin already refuses web pages (rpc.allowedOrigins is left empty); this is the gate for
 * everything else that can reach the port.
 */

const LOOPBACK = new BlockList()
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4')
LOOPBACK.addAddress('::1', 'ipv6')

/**
 * 127.0.0.0/8 and ::1. BlockList also matches the IPv4-mapped form (`::ffff:127.0.0.1`) that a socket
 * accepted on a dual-stack listener (`::`) reports for an IPv4 client.
 */
export function isLoopback (address: string | undefined): boolean {
  const family = address === undefined ? 0 : isIP(address)
  return family !== 0 && LOOPBACK.check(address as string, family === 6 ? 'ipv6' : 'ipv4')
}

const JSON_TYPE = 'application/json'
const fault = (code: number, message: string): string => JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null })
const REALM = 'Bearer realm="fastify-sip-ws RPC"'

// Digests have one length, so timingSafeEqual can compare a token of any length without leaking it.
const digest = (text: string): Buffer => createHash('sha256').update(text).digest()

/** The `rpc:request` hook: a bearer token when one is given, loopback clients only otherwise. */
export function adminAccess (token: string | undefined): XhttpRequestHook {
  if (token !== undefined) {
    const expected = digest(token)
    return async function bearerToken (request, reply) {
      // RFC 7235 §2.1: the scheme name is case-insensitive; the token is compared exactly.
      const given = /^bearer +(\S+) *$/i.exec(request.headers.authorization ?? '')?.[1]
      if (given !== undefined && timingSafeEqual(digest(given), expected)) return
      request.log.warn({ remoteAddress: request.socket.remoteAddress }, 'RPC refused: no valid bearer token')
      // RFC 6750 §3.1: no error code when no credentials came, invalid_token when wrong ones did.
      const challenge = given === undefined ? REALM : `${REALM}, error="invalid_token"`
      await reply.code(401).header('www-authenticate', challenge).type(JSON_TYPE).send(fault(401, 'Unauthorized'))
    }
  }
  return async function loopbackOnly (request, reply) {
    // The socket's own address, never a forwarded-for header a client could write.
    const remoteAddress = request.socket.remoteAddress
    if (isLoopback(remoteAddress)) return
    request.log.warn({ remoteAddress }, 'RPC refused: not a loopback client and RPC_TOKEN is not set')
    await reply.code(403).type(JSON_TYPE).send(fault(403, 'RPC answers loopback clients only; set RPC_TOKEN to allow others'))
  }
}
