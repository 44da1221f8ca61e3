import type { FastifyReply, FastifyRequest } from 'fastify'

/**
 * Who may call the JSON-RPC endpoint. A web page can POST to any URL the browser reaches without a CORS
 * preflight (a `text/plain` fetch, a form), and the method runs even though the page cannot read the
 * answer. So a request a page made, which browsers mark with `Origin` or `Sec-Fetch-Site`, is refused
 * unless its origin is listed; scripts (curl, ops tools, Prometheus) send neither and are served as before.
 * The Host check is against DNS rebinding, where a page's own name comes to point at this server.
 */

export interface RpcAccessOptions {
  /** Canonical origins (`scheme://host[:port]`, as browsers send them) whose pages may call. */
  allowedOrigins: readonly string[]
  /** Host header values, with or without a port; undefined lets any Host through. */
  allowedHosts?: readonly string[]
}

// Preflight answers may be cached this many seconds (the header's unit).
const PREFLIGHT_MAX_AGE = '600'

/**
 * The origin as a browser serializes it (RFC 6454 §6.1: lower-case scheme and host, default port left
 * out), or null when `text` is not an http(s) origin with nothing after the authority.
 */
export function canonicalOrigin (text: string): string | null {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return null
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') return null
  // A wildcard would parse as a host name that no page has: refuse it rather than let it look like one.
  if (url.pathname !== '/' || !/^[a-z]+:\/\/[^/?#*]+\/?$/i.test(text)) return null
  return url.origin
}

/** `Admin.Example.com:8443` → `{ name: 'admin.example.com', port: '8443' }`; `[::1]` keeps its brackets. */
function splitHost (host: string): { name: string, port: string | null } {
  const lower = host.toLowerCase()
  const colon = lower.lastIndexOf(':')
  if (colon === -1 || colon < lower.lastIndexOf(']')) return { name: lower, port: null }
  return { name: lower.slice(0, colon), port: lower.slice(colon + 1) }
}

/** An entry without a port matches its name on any port; one with a port matches only that port. */
function hostMatcher (allowed: readonly string[]): (host: string) => boolean {
  const anyPort = new Set<string>()
  const exact = new Set<string>()
  for (const entry of allowed) {
    const { name, port } = splitHost(entry)
    if (port === null) anyPort.add(name)
    else exact.add(`${name}:${port}`)
  }
  return (host) => {
    if (host === '') return false
    const { name, port } = splitHost(host)
    return anyPort.has(name) || (port !== null && exact.has(`${name}:${port}`))
  }
}

async function refuse (request: FastifyRequest, reply: FastifyReply, reason: string): Promise<FastifyReply> {
  request.log.warn({ host: request.host, origin: request.headers.origin, secFetchSite: request.headers['sec-fetch-site'] }, 'fastify-sip-ws: RPC request refused: %s', reason)
  // Shaped like the endpoint's own faults (the code is the HTTP status), so a client has one format to read.
  return await reply.code(403).type('application/json').send(JSON.stringify({ jsonrpc: '2.0', error: { code: 403, message: reason }, id: null }))
}

/**
 * An `onRequest` hook for the endpoint's routes: it runs before the body is read, so a refused batch runs
 * none of its calls, and before the `rpc:request` hooks.
 */
export function rpcAccessHook (options: RpcAccessOptions): (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined> {
  const origins = new Set(options.allowedOrigins)
  const hostAllowed = options.allowedHosts === undefined ? null : hostMatcher(options.allowedHosts)
  return async function rpcAccess (request, reply) {
    if (hostAllowed !== null && !hostAllowed(request.host)) return await refuse(request, reply, 'Host not allowed')
    const origin = request.headers.origin
    const fetchSite = request.headers['sec-fetch-site']
    // The answer depends on Origin whenever some are listed; caches must not reuse it for another.
    if (origins.size > 0) reply.header('vary', 'Origin')
    if (origin === undefined && (fetchSite === undefined || fetchSite === 'none')) return
    // `Origin: null` (sandboxed frames, file: pages) can never be listed: any page can send it.
    if (origin === undefined || !origins.has(origin)) return await refuse(request, reply, 'Origin not allowed')
    reply.header('access-control-allow-origin', origin)
  }
}

/** The CORS preflight answer for a listed origin (the access hook has already checked it). */
export async function preflight (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  if (request.headers.origin === undefined) return await reply.code(204).header('allow', 'POST, OPTIONS').send()
  return await reply.code(204).headers({
    'access-control-allow-methods': 'POST',
    'access-control-allow-headers': 'Content-Type, Authorization',
    'access-control-max-age': PREFLIGHT_MAX_AGE
  }).send()
}
