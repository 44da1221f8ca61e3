import { splitList } from '../sip/headers'
import { headerKey, type SipRequest } from '../sip/message'
import { parseNameAddr, parseUri, topRoute, type SipUri } from '../sip/uri'

/** More Routes of its own than this at the top of one request is not the edge's doing. */
const MOST_OWN_ROUTES = 4

/**
 * RFC 3261 §16.4, route information preprocessing, for a proxy that knows its own URIs by `own`:
 *
 * - a Request-URI that is one of its own came from a strict router (§16.12.1.2): the last Route value
 *   is the real Request-URI, and it is taken off the Route set;
 * - then the Route values naming this proxy at the top of the set are removed (both of a double
 *   record-route, RFC 5658).
 *
 * Only after this does the proxy decide whether the request is for itself (§16.4). Returns the URIs of
 * its own it took off, the strict router's Request-URI first: a flow token may be in one of them.
 */
export function takeOwnRoutes (request: SipRequest, own: (uri: SipUri) => boolean): SipUri[] {
  const taken: SipUri[] = []
  const ruri = parseUri(request.uri)
  if (ruri !== null && own(ruri) && request.has('route')) {
    const last = parseNameAddr(request.pop('route', splitList) ?? '')
    if (last !== null) {
      taken.push(ruri)
      request.uri = last.uri
    }
  }
  for (let i = 0; i < MOST_OWN_ROUTES; i++) {
    const top = topRoute(request)
    if (top === null || !own(top)) break
    request.shift('route', splitList)
    taken.push(top)
  }
  return taken
}

/**
 * RFC 3261 §16.6 step 6: when the next hop is a strict router (its Route value has no `lr`), the
 * Request-URI goes last in the Route set and that first Route value becomes the Request-URI, as a strict
 * router expects (RFC 2543).
 */
export function toStrictNextHop (request: SipRequest): void {
  const top = topRoute(request)
  if (top === null || top.params.has('lr')) return
  const firstLine = request.headers.findIndex((h) => headerKey(h.name) === 'route')
  const first = parseNameAddr(request.shift('route', splitList) ?? '')
  if (first === null) return
  const target = `<${request.uri}>`
  request.uri = first.uri
  const lastLine = request.headers.map((h) => headerKey(h.name)).lastIndexOf('route')
  if (lastLine === -1) request.headers.splice(firstLine, 0, { name: 'Route', value: target })
  else request.headers[lastLine] = { name: request.headers[lastLine].name, value: `${request.headers[lastLine].value}, ${target}` }
}
