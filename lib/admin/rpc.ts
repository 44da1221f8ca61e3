import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Hooks } from '../hooks'
import type { SipWsOptionsResolved } from '../options'
import { preflight, rpcAccessHook } from './rpc-access'
import { RpcFault, rpcMethods, type Method, type RpcParts } from './rpc-methods'

/**
 * JSON-RPC 2.0 over HTTP POST with the method names, result shapes, error texts and HTTP statuses of
 * Kamailio's `jsonrpcs` module (observed on 5.6), so a script written against Kamailio's /RPC works
 * unchanged. Beyond Kamailio: batches and notifications follow JSON-RPC 2.0.
 */

interface RpcRequest {
  jsonrpc?: unknown
  method?: unknown
  params?: unknown
  id?: unknown
}

interface RpcError { code: number, message: string }
type RpcResponse = { jsonrpc: '2.0', result: unknown, id: unknown } | { jsonrpc: '2.0', error: RpcError, id: unknown }

const PARSE_ERROR: RpcError = { code: -32700, message: 'Parse error' }
const INVALID_REQUEST: RpcError = { code: -32600, message: 'Invalid Request' }
const INTERNAL_ERROR: RpcError = { code: 500, message: 'Internal error' }

// Kamailio's texts for what our own calls refuse with a typed error.
const KAMAILIO_FAULTS: Readonly<Record<string, RpcError>> = {
  FST_SIPWS_BAD_DUMP_ORDER: { code: 400, message: 'Bad display order parameter' }
}

type RpcOptions = NonNullable<SipWsOptionsResolved['rpc']>

async function call (methods: Record<string, Method>, request: unknown): Promise<RpcResponse | null> {
  if (request === null || typeof request !== 'object' || Array.isArray(request)) {
    return { jsonrpc: '2.0', error: INVALID_REQUEST, id: null }
  }
  const { jsonrpc, method, params, id } = request as RpcRequest
  const isNotification = !('id' in request)
  if ((jsonrpc !== undefined && jsonrpc !== '2.0') || typeof method !== 'string' || (params !== undefined && !Array.isArray(params))) {
    return { jsonrpc: '2.0', error: INVALID_REQUEST, id: id ?? null }
  }
  const fn = Object.hasOwn(methods, method) ? methods[method] : undefined
  let response: RpcResponse
  if (fn === undefined) {
    response = { jsonrpc: '2.0', error: { code: -32601, message: 'Method not found' }, id: id ?? null }
  } else {
    try {
      response = { jsonrpc: '2.0', result: await fn(params ?? []), id: id ?? null }
    } catch (err) {
      response = { jsonrpc: '2.0', error: faultOf(err), id: id ?? null }
    }
  }
  return isNotification ? null : response
}

/** A typed error of ours keeps its status and message (a cluster timeout is a 504); anything else is 500. */
function faultOf (err: unknown): RpcError {
  if (err instanceof RpcFault) return { code: err.code, message: err.message }
  // Anything may be thrown, null too: the fault is still an answer, not an error of its own.
  if (typeof err !== 'object' || err === null) return INTERNAL_ERROR
  const { code, statusCode, message } = err as { code?: unknown, statusCode?: unknown, message?: unknown }
  if (typeof code === 'string' && Object.hasOwn(KAMAILIO_FAULTS, code)) return KAMAILIO_FAULTS[code]
  if (typeof code === 'string' && code.startsWith('FST_SIPWS_') && typeof statusCode === 'number') return { code: statusCode, message: String(message) }
  return INTERNAL_ERROR
}

/** Kamailio answers a fault with its code as the HTTP status, or 500 for JSON-RPC's negative codes. */
function httpStatus (response: RpcResponse): number {
  if (!('error' in response)) return 200
  return response.error.code >= 100 && response.error.code < 600 ? response.error.code : 500
}

export async function handle (methods: Record<string, Method>, body: string): Promise<{ status: number, payload: unknown }> {
  let parsed: unknown
  try {
    parsed = JSON.parse(body)
  } catch {
    return { status: 500, payload: { jsonrpc: '2.0', error: PARSE_ERROR, id: null } }
  }
  if (Array.isArray(parsed)) {
    if (parsed.length === 0) return { status: 500, payload: { jsonrpc: '2.0', error: INVALID_REQUEST, id: null } }
    // In order, one at a time: a batch's calls take effect in the order written.
    const responses: RpcResponse[] = []
    for (const request of parsed) {
      const response = await call(methods, request)
      if (response !== null) responses.push(response)
    }
    return responses.length === 0 ? { status: 204, payload: null } : { status: 200, payload: responses }
  }
  const response = await call(methods, parsed)
  return response === null ? { status: 204, payload: null } : { status: httpStatus(response), payload: response }
}

/**
 * Registers the POST route in its own context so its raw-body parser and its access check do not touch
 * the app's other routes. The preflight route exists only when origins are listed: otherwise no page may
 * call, and OPTIONS gets the app's 404 with no CORS header.
 */
export async function registerRpc (app: FastifyInstance, options: RpcOptions, hooks: Hooks, parts: RpcParts): Promise<void> {
  const methods = rpcMethods(parts)
  await app.register(async function sipWsRpc (child) {
    child.removeAllContentTypeParsers()
    child.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => { done(null, body) })
    child.addHook('onRequest', rpcAccessHook(options))
    if (options.allowedOrigins.length > 0) child.options(options.path, preflight)
    child.post(options.path, async (request: FastifyRequest, reply: FastifyReply) => {
      if (await hooks.runRequest('rpc:request', request, reply)) return reply
      const { status, payload } = await handle(methods, typeof request.body === 'string' ? request.body : '')
      if (status === 204) return await reply.code(204).send()
      return await reply.code(status).type('application/json').send(JSON.stringify(payload))
    })
  })
}
