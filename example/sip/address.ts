import { isIP } from 'node:net'
import { bareHost, formatHost } from './host'

/** A SIP transport address: what `SIP_CORE` and `SIP_LISTEN` name. */
export interface SipAddress {
  transport: 'udp' | 'tcp'
  /** An IP address, without brackets. */
  host: string
  port: number
}

/** One end of a UDP datagram or TCP connection: where a message came from, or where it goes. */
export interface SipPeer {
  transport: 'udp' | 'tcp'
  address: string
  port: number
}

/**
 * `udp:127.0.0.1:5060`, `tcp:[::1]:5060`. Only IP literals: the example resolves no names (a core that is
 * a DNS name needs RFC 3263 NAPTR/SRV look-ups, which belong to a real proxy). `name` goes into the error.
 */
export function parseSipAddress (text: string, name: string): SipAddress {
  const match = /^(udp|tcp):(\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d{1,5})$/i.exec(text.trim())
  const host = bareHost(match?.[2] ?? '')
  const port = Number(match?.[3])
  if (match === null || isIP(host) === 0 || port > 65535) {
    throw new Error(`${name} must be udp:IP:PORT or tcp:IP:PORT (e.g. udp:127.0.0.1:5060), got ${JSON.stringify(text)}`)
  }
  return { transport: match[1].toLowerCase() as 'udp' | 'tcp', host, port }
}

export function formatSipAddress (address: SipAddress): string {
  return `${address.transport}:${formatHost(address.host)}:${address.port}`
}

/** The `host:port` of a Via sent-by or a URI. */
export function hostPort (address: { host: string, port: number }): string {
  return `${formatHost(address.host)}:${address.port}`
}
