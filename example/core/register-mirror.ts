import type { FastifyBaseLogger } from 'fastify'
import { contactKey, type Registrar } from '../proxy/registrar'
import { parseSeconds, splitList } from '../sip/headers'
import type { SipRequest, SipResponse } from '../sip/message'
import { parseNameAddr, parseUri, type NameAddr, type SipUri } from '../sip/uri'

/** How long a REGISTER may wait for the core's final answer (64 × T1, RFC 3261 §17.1.2.2 Timer F). */
const PENDING_MS = 64 * 500

interface Pending {
  aor: string
  contacts: Array<{ uri: string, parsed: SipUri, contact: NameAddr }>
  expiresAt: number
}

/**
 * Keeps the edge's own registrar in step with the registrations the core accepted through it, so a
 * request from one WebSocket client to another one on the same edge is relayed here, as without a core.
 * The core stays the registrar: a binding is added, refreshed or removed here only when the core's 2xx
 * to the client's REGISTER lists it (RFC 3261 §10.3 step 8), with the expiry the core granted.
 */
export class RegisterMirror {
  private readonly pending = new Map<string, Pending>()

  constructor (private readonly registrar: Registrar, private readonly log: FastifyBaseLogger, private readonly now: () => number = Date.now) {}

  /** A client's REGISTER on its way to the core. */
  forwarded (id: number, request: SipRequest): void {
    const to = parseNameAddr(request.get('to') ?? '')
    const aor = to === null ? null : parseUri(to.uri)
    if (aor?.user === null || aor === null) return
    const contacts: Pending['contacts'] = []
    for (const value of request.getAll('contact').flatMap(splitList)) {
      const contact = parseNameAddr(value)
      const parsed = contact === null ? null : parseUri(contact.uri)
      if (contact !== null && parsed !== null) contacts.push({ uri: contact.uri, parsed, contact })
    }
    const now = this.now()
    for (const [key, entry] of this.pending) {
      if (entry.expiresAt > now) break
      this.pending.delete(key)
    }
    this.pending.set(pendingKey(id, request), { aor: aor.user, contacts, expiresAt: now + PENDING_MS })
  }

  /** A response from the core, on its way back to connection `id`. */
  answered (id: number, response: SipResponse): void {
    if (response.status < 200) return
    const key = pendingKey(id, response)
    const pending = this.pending.get(key)
    if (pending === undefined) return
    this.pending.delete(key)
    if (response.status >= 300) return
    const granted = new Map<string, number>()
    const headerExpires = parseSeconds(response.get('expires') ?? '')
    for (const value of response.getAll('contact').flatMap(splitList)) {
      const contact = parseNameAddr(value)
      const parsed = contact === null ? null : parseUri(contact.uri)
      if (contact === null || parsed === null) continue
      const expires = parseSeconds(contact.params.get('expires') ?? '') ?? headerExpires
      if (expires !== null) granted.set(contactKey(parsed), expires)
    }
    for (const { uri, parsed, contact } of pending.contacts) {
      const params = new Map(contact.params)
      params.delete('expires')
      const expires = granted.get(contactKey(parsed)) ?? 0
      this.registrar.update(pending.aor, id, uri, parsed, params, expires)
      this.log.info({ id, aor: pending.aor, contact: uri, expires }, expires === 0 ? 'sip: unregistered at the core' : 'sip: registered at the core')
    }
  }
}

function pendingKey (id: number, message: SipRequest | SipResponse): string {
  return `${id}\n${message.get('call-id') ?? ''}\n${message.get('cseq') ?? ''}`
}
