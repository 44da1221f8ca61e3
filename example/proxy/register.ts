import type { FastifyBaseLogger } from 'fastify'
import { parseSeconds, splitList } from '../sip/headers'
import type { SipRequest } from '../sip/message'
import { parseNameAddr, parseUri, type NameAddr, type SipUri } from '../sip/uri'
import type { Registrar } from './registrar'

/** Expiry of a REGISTER that names none, and the longest granted unless configured (seconds). */
export const DEFAULT_EXPIRES = 3600

/**
 * The answer to a REGISTER. `written` answers wait, in a cluster, until Redis holds the bindings, so
 * another node finds them as soon as the UA knows it is registered.
 */
export interface RegisterAnswer {
  status: number
  reason: string
  extra: Array<[string, string]>
  written: boolean
}

interface ContactUpdate { uri: string, parsed: SipUri, contact: NameAddr, expires: number }

const refused = (warning: string): RegisterAnswer => ({ status: 400, reason: 'Bad Request', extra: [['Warning', `399 - "${warning}"`]], written: false })

/**
 * A registrar's REGISTER (RFC 3261 §10.3), for the AOR's user part: `Contact: *` with `Expires: 0`
 * removes every binding, other contacts are added, refreshed or (expires 0) removed, each granted at most
 * `maxExpires` seconds (§10.3 step 7 lets a registrar shorten it). The 200 lists the AOR's bindings.
 */
export function register (registrar: Registrar, log: FastifyBaseLogger, maxExpires: number, id: number, request: SipRequest): RegisterAnswer {
  const to = parseNameAddr(request.get('to') ?? '')
  const aor = to === null ? null : parseUri(to.uri)
  if (aor === null || aor.user === null) return refused('To must name a user')
  const user = aor.user
  const expiresHeader = request.get('expires')
  const defaultExpires = expiresHeader === undefined ? DEFAULT_EXPIRES : parseSeconds(expiresHeader)
  if (defaultExpires === null) return refused('bad Expires')

  const contacts = request.getAll('contact').flatMap(splitList)
  if (contacts.length === 1 && contacts[0] === '*') {
    if (defaultExpires !== 0) return refused('Contact: * needs Expires: 0')
    registrar.removeAll(user)
    log.info({ id, aor: user }, 'sip: all bindings removed')
    return { status: 200, reason: 'OK', extra: [], written: true }
  }

  const updates = contactUpdates(contacts, defaultExpires, maxExpires)
  if (typeof updates === 'string') return refused(updates)
  for (const { uri, parsed, contact, expires } of updates) {
    const params = new Map(contact.params)
    params.delete('expires')
    if (!registrar.update(user, id, uri, parsed, params, expires)) {
      return { status: 403, reason: 'Forbidden', extra: [['Warning', `399 - "at most ${registrar.maxPerConnection} bindings per connection"`]], written: false }
    }
    log.info({ id, aor: user, contact: uri, expires }, expires === 0 ? 'sip: unregistered' : 'sip: registered')
  }
  const extra: Array<[string, string]> = registrar.bindings(user).map((b) => ['Contact', registrar.contactValue(b)])
  return { status: 200, reason: 'OK', extra, written: true }
}

/** Every contact of the REGISTER with the expiry it gets, or the warning of the first that is wrong. */
function contactUpdates (contacts: string[], defaultExpires: number, maxExpires: number): ContactUpdate[] | string {
  const updates: ContactUpdate[] = []
  for (const value of contacts) {
    const contact = value === '*' ? null : parseNameAddr(value)
    const parsed = contact === null ? null : parseUri(contact.uri)
    if (contact === null || parsed === null) return 'bad Contact'
    const param = contact.params.get('expires')
    const expires = param === undefined ? defaultExpires : parseSeconds(param ?? '')
    if (expires === null) return 'bad expires parameter'
    updates.push({ uri: contact.uri, parsed, contact, expires: Math.min(expires, maxExpires) })
  }
  return updates
}
