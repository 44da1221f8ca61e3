import { formatParams, type Params } from '../sip/headers'
import type { SipUri } from '../sip/uri'
import type { ConnectionLocal } from './connection-local'

/** One registered contact of an address-of-record, reachable over one WebSocket connection. */
export interface Binding {
  /** The address-of-record: the user part of the REGISTER's To URI. */
  aor: string
  connectionId: number
  /** The Contact URI, as the UA wrote it (the Request-URI the UA expects on requests relayed to it). */
  uri: string
  parsed: SipUri
  /** Contact header parameters other than `expires` (`+sip.instance`, `reg-id`, ...). */
  params: Params
  expiresAt: number
}

/** A binding as any node of a cluster reads it from Redis: enough to relay a request to the connection behind it. */
export interface RemoteBinding {
  aor: string
  connectionId: number
  /** The Contact URI: the Request-URI the UA expects on requests relayed to it. */
  uri: string
  /** The node (`app.wsCluster.instance`) that holds the connection. */
  node: string
  /** The connection's local side, for the Via and Record-Route made towards it; null if not recorded. */
  local: ConnectionLocal | null
}

/**
 * A user with no binding now whose UA is moving to another node of a cluster (its node drains): a request
 * for it waits for its registration there, until `movingUntil` (ms), rather than getting 404.
 */
export interface MovingUser {
  aor: string
  movingUntil: number
}

/** Told of the bindings a UA makes and removes (cluster mode writes them through to Redis). */
export interface RegistrarListener {
  /** A binding was made or refreshed. */
  saved: (binding: Binding) => void
  /** A binding was removed by its UA, or with its connection; not one that expired (a copy expires alone). */
  removed: (binding: Binding) => void
}

/**
 * The location service of a registrar (RFC 3261 §10.3) for a single domain: the domain part of an AOR is
 * ignored, which is what lets a page opened as `127.0.0.1` and one opened as `localhost` reach each other.
 *
 * A WebSocket UA cannot accept connections (RFC 7118 §5), so a binding is only useful while the connection
 * that registered it is open: bindings belong to a connection and go with it. Expiry is checked when a
 * binding is read, so no timer is needed per binding.
 */
export class Registrar {
  private readonly byAor = new Map<string, Binding[]>()
  /** `user@host` of each contact URI: how an in-dialog request (Request-URI = a Contact) finds its UA. */
  private readonly byContact = new Map<string, Binding>()
  private readonly byConnection = new Map<number, Set<Binding>>()

  constructor (
    readonly maxPerConnection = 32,
    private readonly now: () => number = Date.now,
    private readonly listener: RegistrarListener | null = null
  ) {}

  /**
   * Adds or refreshes the binding of `uri` for `aor` on a connection; `expires` 0 removes it. Returns
   * false when the connection already holds `maxPerConnection` bindings.
   */
  update (aor: string, connectionId: number, uri: string, parsed: SipUri, params: Params, expires: number): boolean {
    const key = contactKey(parsed)
    const list = this.live(aor)
    const existing = list.find((b) => contactKey(b.parsed) === key)
    if (existing !== undefined) this.delete(existing)
    const owned = this.byConnection.get(connectionId)
    if (expires === 0 || (owned !== undefined && owned.size >= this.maxPerConnection)) {
      if (existing !== undefined) this.listener?.removed(existing)
      return expires === 0
    }
    const binding: Binding = { aor, connectionId, uri, params, parsed, expiresAt: this.now() + expires * 1000 }
    const current = this.byAor.get(aor)
    if (current === undefined) this.byAor.set(aor, [binding])
    else current.push(binding)
    this.byContact.set(key, binding)
    if (owned === undefined) this.byConnection.set(connectionId, new Set([binding]))
    else owned.add(binding)
    // A refresh, or the same contact over a new connection, replaces the old binding where it is stored.
    this.listener?.saved(binding)
    return true
  }

  /** `Contact: *` with `Expires: 0` (RFC 3261 §10.2.2): every binding of the AOR goes. */
  removeAll (aor: string): void {
    for (const binding of [...this.byAor.get(aor) ?? []]) {
      this.delete(binding)
      this.listener?.removed(binding)
    }
  }

  /** The live bindings of an AOR, oldest first. */
  bindings (aor: string): readonly Binding[] {
    return this.live(aor)
  }

  /** The binding a request for `aor` goes to: the newest one (no forking in this example). */
  lookup (aor: string): Binding | undefined {
    return this.live(aor).at(-1)
  }

  /** The binding whose Contact URI is `uri`: the target of an in-dialog request. */
  lookupContact (uri: SipUri): Binding | undefined {
    const binding = this.byContact.get(contactKey(uri))
    if (binding === undefined) return undefined
    if (binding.expiresAt <= this.now()) {
      this.delete(binding)
      return undefined
    }
    return binding
  }

  /** Drops every binding made over a connection; returns the AORs that lost one. */
  dropConnection (connectionId: number): string[] {
    const owned = this.byConnection.get(connectionId)
    if (owned === undefined) return []
    const aors = new Set<string>()
    for (const binding of owned) {
      aors.add(binding.aor)
      this.delete(binding)
      this.listener?.removed(binding)
    }
    this.byConnection.delete(connectionId)
    return [...aors]
  }

  /** Every binding not yet expired. */
  * all (): IterableIterator<Binding> {
    const now = this.now()
    for (const owned of this.byConnection.values()) {
      for (const binding of owned) if (binding.expiresAt > now) yield binding
    }
  }

  /** Number of AORs with at least one binding (expired ones included until read). */
  get size (): number {
    return this.byAor.size
  }

  /** The Contact value a 200 to REGISTER lists for a binding (RFC 3261 §10.3 step 8). */
  contactValue (binding: Binding): string {
    const remaining = Math.max(0, Math.ceil((binding.expiresAt - this.now()) / 1000))
    return `<${binding.uri}>${formatParams(binding.params)};expires=${remaining}`
  }

  private live (aor: string): Binding[] {
    const list = this.byAor.get(aor)
    if (list === undefined) return []
    const now = this.now()
    for (const binding of list.filter((b) => b.expiresAt <= now)) this.delete(binding)
    return this.byAor.get(aor) ?? []
  }

  private delete (binding: Binding): void {
    const list = this.byAor.get(binding.aor)
    if (list !== undefined) {
      const index = list.indexOf(binding)
      if (index !== -1) list.splice(index, 1)
      if (list.length === 0) this.byAor.delete(binding.aor)
    }
    const key = contactKey(binding.parsed)
    if (this.byContact.get(key) === binding) this.byContact.delete(key)
    const owned = this.byConnection.get(binding.connectionId)
    if (owned !== undefined) {
      owned.delete(binding)
      if (owned.size === 0) this.byConnection.delete(binding.connectionId)
    }
  }
}

/**
 * What identifies a contact: user, host and port, as RFC 3261 §19.1.4 compares URIs: the user with its
 * escapes resolved (`%61lice` is `alice`) and case-sensitive, the host case-insensitive, a missing port
 * not the same as 5060. WebSocket UAs make user and host up (`sip:k3j2h@df7jal23ls0d.invalid`, RFC 7118
 * §5.2), so they are unique enough; a phone's contact may have no user part (`sip:192.0.2.4:5091`).
 */
export function contactKey (uri: SipUri): string {
  return `${uri.user ?? ''}@${uri.host.toLowerCase()}${uri.port === null ? '' : `:${uri.port}`}`
}

/**
 * The RFC 5626 flow a binding stands for (§6: `+sip.instance` and `reg-id` together), or null for a UA
 * that names none. JsSIP and SIP.js send both; a new registration of the same flow replaces the old one.
 */
export function flowKey (params: Params): string | null {
  const instance = params.get('+sip.instance')
  if (instance === undefined || instance === null) return null
  return `${instance}#${params.get('reg-id') ?? ''}`
}
