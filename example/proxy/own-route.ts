import { formatHost, sameHost } from '../sip/host'
import type { SipUri } from '../sip/uri'
import type { ConnectionLocal } from './connection-local'

/**
 * The Record-Route the edge puts on a dialog-forming request, facing a WebSocket connection (its
 * `r2=on` partner faces the core, RFC 5658 double record-route).
 */
export function wsFacingRoute (local: ConnectionLocal): string {
  return `<sip:${formatHost(local.localAddress)}:${local.localPort};transport=${local.secure === true ? 'wss' : 'ws'};lr;r2=on>`
}

/**
 * Whether a Route URI names this edge on the WebSocket side of a connection (RFC 3261 §16.4): a loose
 * route (`lr`) to the connection's local address, or to the host the client connected to (the Host
 * header, behind a proxy or a name), with no port or the local one. Such a route was put there by the
 * edge (`wsFacingRoute`) or preloaded by a client that knows the edge: either way it is ours to remove.
 */
export function isOwnRoute (uri: SipUri, local: ConnectionLocal | undefined): boolean {
  if (local === undefined || !uri.params.has('lr')) return false
  const named = sameHost(uri.host, local.localAddress) || (local.host !== undefined && sameHost(uri.host, local.host.replace(/:\d+$/, '')))
  return named && (uri.port === null || uri.port === local.localPort)
}
