/**
 * Hosts as SIP writes them (RFC 3261 §19.1.1, §25.1): a name, an IPv4 address, or an IPv6 reference in
 * brackets, optionally followed by `:port`.
 */

const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)$/

/** `host[:port]` of a URI or a Via sent-by; null when either part is malformed. */
export function parseHostPort (text: string): { host: string, port: number | null } | null {
  let host = text
  let port: number | null = null
  const close = text.lastIndexOf(']')
  const colon = text.lastIndexOf(':')
  if (colon > close && !(close === -1 && text.indexOf(':') !== colon)) {
    host = text.slice(0, colon)
    const digits = text.slice(colon + 1)
    if (!/^\d{1,5}$/.test(digits)) return null
    port = Number(digits)
    if (port > 65535) return null
  }
  if (!HOST.test(host)) return null
  return { host, port }
}

/** A host for a Via sent-by or a URI: IPv6 addresses go in brackets. */
export function formatHost (address: string): string {
  return address.includes(':') && !address.startsWith('[') ? `[${address}]` : address
}

/** An IPv6 reference without its brackets (`[::1]` → `::1`); anything else as it is. */
export function bareHost (host: string): string {
  return host.replace(/^\[(.*)\]$/, '$1')
}

/** Whether two hosts are the same, brackets and case aside (RFC 3261 §19.1.4: hosts compare case-insensitively). */
export function sameHost (a: string, b: string): boolean {
  return bareHost(a).toLowerCase() === bareHost(b).toLowerCase()
}

/**
 * Whether an address reaches a group rather than one host: the IPv4 broadcast, IPv4 multicast
 * (224.0.0.0/4) or IPv6 multicast (ff00::/8). A response is never sent to one (RFC 4475 §3.3.10).
 */
export function isGroupAddress (address: string): boolean {
  const bare = bareHost(address).toLowerCase()
  if (bare === '255.255.255.255') return true
  const first = /^(\d{1,3})\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.exec(bare)
  if (first !== null) return Number(first[1]) >= 224 && Number(first[1]) <= 239
  return bare.includes(':') && bare.startsWith('ff')
}
