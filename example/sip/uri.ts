import { parseParams, splitList, type Params } from './headers'
import { parseHostPort } from './host'
import type { SipMessage } from './message'

/** SIP URIs (RFC 3261 §19.1) and the name-addr form of To, From, Contact and Route (§20.10, §25.1). */

export interface SipUri {
  scheme: string
  user: string | null
  password: string | null
  host: string
  port: number | null
  /** URI parameters (`;transport=ws;lr`), names lower-cased. */
  params: Params
  /** The `?name=value&...` part, kept verbatim. */
  headers: string
}

export interface NameAddr {
  display: string | null
  /** The URI text without the angle brackets. */
  uri: string
  /** Header parameters (`;tag=...`, `;expires=...`), names lower-cased. */
  params: Params
}

/** `sip:` and `sips:` URIs (RFC 3261 §19.1); other schemes parse with their user part left null. */
export function parseUri (text: string): SipUri | null {
  const colon = text.indexOf(':')
  if (colon <= 0) return null
  const scheme = text.slice(0, colon).toLowerCase()
  if (!/^[a-z][a-z0-9+.-]*$/.test(scheme)) return null
  let rest = text.slice(colon + 1)
  if (scheme !== 'sip' && scheme !== 'sips') {
    return rest === '' ? null : { scheme, user: null, password: null, host: '', port: null, params: new Map(), headers: rest }
  }
  let headers = ''
  const question = rest.indexOf('?')
  if (question !== -1) {
    headers = rest.slice(question + 1)
    rest = rest.slice(0, question)
  }
  let user: string | null = null
  let password: string | null = null
  // '@' cannot appear unescaped in the user part or the parameters, so the first one ends the userinfo.
  const at = rest.indexOf('@')
  if (at !== -1) {
    const userinfo = rest.slice(0, at)
    rest = rest.slice(at + 1)
    const pw = userinfo.indexOf(':')
    user = pw === -1 ? userinfo : userinfo.slice(0, pw)
    password = pw === -1 ? null : userinfo.slice(pw + 1)
    if (user === '' || /[\s<>"]/.test(user)) return null
  }
  const semi = rest.indexOf(';')
  const hostport = parseHostPort(semi === -1 ? rest : rest.slice(0, semi))
  if (hostport === null) return null
  const params = semi === -1 ? new Map() : parseParams(rest.slice(semi + 1))
  if (params === null) return null
  return { scheme, user, password, host: hostport.host, port: hostport.port, params, headers }
}

/**
 * `"Display" <uri>;params`, `Display <uri>;params` or `uri;params`. In the last form every `;` after the
 * URI starts a header parameter (RFC 3261 §20.10), which is why URIs with parameters come in brackets.
 */
export function parseNameAddr (value: string): NameAddr | null {
  const text = value.trim()
  let display: string | null = null
  let uri: string
  let after: string
  const open = text.indexOf('<')
  if (open !== -1) {
    const close = text.indexOf('>', open)
    if (close === -1) return null
    display = text.slice(0, open).trim()
    if (display.startsWith('"')) {
      if (!display.endsWith('"') || display.length < 2) return null
      display = display.slice(1, -1).replace(/\\(.)/g, '$1')
    }
    if (display === '') display = null
    uri = text.slice(open + 1, close).trim()
    after = text.slice(close + 1)
  } else {
    const semi = text.indexOf(';')
    uri = semi === -1 ? text : text.slice(0, semi)
    after = semi === -1 ? '' : text.slice(semi)
    if (/\s/.test(uri)) return null
  }
  if (uri === '') return null
  after = after.trim()
  if (after !== '' && !after.startsWith(';')) return null
  const params = parseParams(after)
  if (params === null) return null
  return { display, uri, params }
}

/** The URI of the first Route value (RFC 3261 §16.4: the next hop, or this proxy), or null. */
export function topRoute (message: SipMessage): SipUri | null {
  const top = message.get('route')
  if (top === undefined) return null
  const route = parseNameAddr(splitList(top)[0] ?? '')
  return route === null ? null : parseUri(route.uri)
}
