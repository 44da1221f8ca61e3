import { parseParams, splitList, type Params } from './headers'
import { parseHostPort } from './host'
import type { SipMessage } from './message'
import { quotedEnd, TOKEN, unescapeUri, unquote } from './syntax'

/** SIP URIs (RFC 3261 §19.1) and the name-addr form of To, From, Contact and Route (§20.10, §25.1). */

export interface SipUri {
  scheme: string
  /**
   * The user part with its `%XX` escapes resolved, as URIs compare (RFC 3261 §19.1.4): `sip:%61lice@x`
   * and `sip:alice@x` name the same user. Null without one, and for schemes other than sip and sips.
   */
  user: string | null
  password: string | null
  /** As written: a name, an IPv4 address, or an IPv6 reference in brackets. */
  host: string
  port: number | null
  /** URI parameters (`;transport=ws;lr`), names lower-cased and unescaped. */
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

const ESCAPED = '%[0-9A-Fa-f]{2}'
/** RFC 3261 §25.1 `user`: unreserved, escaped, and `& = + $ , ; ? /`. */
const USER = new RegExp(`^(?:[A-Za-z0-9\\-_.!~*'()&=+$,;?/]|${ESCAPED})+$`)
const PASSWORD = new RegExp(`^(?:[A-Za-z0-9\\-_.!~*'()&=+$,]|${ESCAPED})*$`)
/** `paramchar`: unreserved, escaped, and `[ ] / : & + $`. */
const PARAM = new RegExp(`^(?:[A-Za-z0-9\\-_.!~*'()[\\]/:&+$]|${ESCAPED})+$`)
/** `hname=hvalue *( & hname=hvalue )`, whose characters add `? ` to paramchar's less `&`. */
const HEADER = new RegExp(`^(?:[A-Za-z0-9\\-_.!~*'()[\\]/?:+$]|${ESCAPED})+=(?:[A-Za-z0-9\\-_.!~*'()[\\]/?:+$]|${ESCAPED})*$`)
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*$/

/**
 * A URI. `sip:` and `sips:` ones are checked against RFC 3261 §25.1 and split; other schemes (`tel:`,
 * `urn:`, an unknown one) only need a scheme and no white space, and keep their text in `headers`. Null
 * for anything else.
 */
export function parseUri (text: string): SipUri | null {
  const colon = text.indexOf(':')
  if (colon <= 0 || !SCHEME.test(text.slice(0, colon))) return null
  const scheme = text.slice(0, colon).toLowerCase()
  const rest = text.slice(colon + 1)
  if (scheme !== 'sip' && scheme !== 'sips') {
    return rest === '' || /[\s<>"]/.test(rest) ? null : { scheme, user: null, password: null, host: '', port: null, params: new Map(), headers: rest }
  }
  return parseSipUri(scheme, rest)
}

function parseSipUri (scheme: string, text: string): SipUri | null {
  // '@' is allowed unescaped in no part of a SIP URI but the one that ends the userinfo.
  const at = text.indexOf('@')
  let user: string | null = null
  let password: string | null = null
  if (at !== -1) {
    const userinfo = text.slice(0, at)
    const pw = userinfo.indexOf(':')
    const rawUser = pw === -1 ? userinfo : userinfo.slice(0, pw)
    password = pw === -1 ? null : userinfo.slice(pw + 1)
    if (!USER.test(rawUser) || (password !== null && !PASSWORD.test(password))) return null
    user = unescapeUri(rawUser)
    if (user === null) return null
  }
  const rest = text.slice(at + 1)
  const question = rest.indexOf('?')
  const beforeHeaders = question === -1 ? rest : rest.slice(0, question)
  const headers = question === -1 ? '' : rest.slice(question + 1)
  if (question !== -1 && !headers.split('&').every((h) => HEADER.test(h))) return null
  const semi = beforeHeaders.indexOf(';')
  const hostport = parseHostPort(semi === -1 ? beforeHeaders : beforeHeaders.slice(0, semi))
  if (hostport === null) return null
  const params = semi === -1 ? new Map() : uriParams(beforeHeaders.slice(semi + 1))
  if (params === null) return null
  return { scheme, user, password, host: hostport.host, port: hostport.port, params, headers }
}

/** `;name[=value]` URI parameters, unescaped, names lower-cased; null when one is empty or malformed. */
function uriParams (text: string): Params | null {
  const params: Params = new Map()
  for (const part of text.split(';')) {
    const eq = part.indexOf('=')
    const name = eq === -1 ? part : part.slice(0, eq)
    const value = eq === -1 ? null : part.slice(eq + 1)
    if (!PARAM.test(name) || (value !== null && !PARAM.test(value))) return null
    const key = unescapeUri(name)
    if (key === null) return null
    params.set(key.toLowerCase(), value === null ? null : unescapeUri(value))
  }
  return params
}

/**
 * `"Display" <uri>;params`, `Display Name <uri>;params` or `uri;params` (RFC 3261 §20.10, §25.1). In the
 * last form every `;` after the URI starts a header parameter, which is why a URI with parameters, a
 * comma or a `?` must come in brackets. Null for anything else: an unclosed quote, a display name that is
 * not tokens, white space inside `<...>`, text after the parameters.
 */
export function parseNameAddr (value: string): NameAddr | null {
  const text = value.trim()
  let display: string | null = null
  let i = 0
  if (text.startsWith('"')) {
    i = quotedEnd(text, 0)
    if (i === -1) return null
    display = unquote(text.slice(0, i))
    while (text[i] === ' ' || text[i] === '\t') i++
    if (text[i] !== '<') return null
  }
  const open = text.indexOf('<', i)
  let uri: string
  let after: string
  if (open === -1) {
    if (display !== null) return null
    const semi = text.indexOf(';')
    uri = (semi === -1 ? text : text.slice(0, semi)).trimEnd()
    after = semi === -1 ? '' : text.slice(semi)
    if (/[\s,?]/.test(uri)) return null
  } else {
    if (display === null) {
      const words = text.slice(0, open).trim()
      if (words !== '' && !words.split(/[ \t]+/).every((w) => TOKEN.test(w))) return null
      display = words === '' ? null : words
    }
    const close = text.indexOf('>', open)
    if (close === -1) return null
    uri = text.slice(open + 1, close)
    after = text.slice(close + 1).trim()
    if (/\s/.test(uri)) return null
    if (after !== '' && !after.startsWith(';')) return null
  }
  if (uri === '' || parseUri(uri) === null) return null
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
