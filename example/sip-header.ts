/**
 * Parsers for the header values the example proxy looks inside: URIs, name-addr (To, From, Contact),
 * Via, CSeq and generic `;name=value` parameters (RFC 3261 §19, §20, §25). Each returns null for text it
 * cannot make sense of rather than throwing, because a proxy answers bad input with a 400, not a crash.
 */

export type Params = Map<string, string | null>

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

export interface Via {
  /** `SIP/2.0/WS`, upper-cased. */
  protocol: string
  host: string
  port: number | null
  params: Params
}

export interface CSeq {
  seq: number
  method: string
}

const TOKEN = /^[A-Za-z0-9.!%*_+`'~-]+$/
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)$/

/**
 * Splits a header value at the commas that separate list elements (RFC 3261 §7.3.1), leaving alone those
 * inside quoted strings and `<...>` (a URI may carry a comma in its parameters or headers).
 */
export function splitList (value: string): string[] {
  const parts: string[] = []
  let start = 0
  let quoted = false
  let angle = false
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]
    if (quoted) {
      if (ch === '\\') i++
      else if (ch === '"') quoted = false
    } else if (ch === '"') {
      quoted = true
    } else if (ch === '<') {
      angle = true
    } else if (ch === '>') {
      angle = false
    } else if (ch === ',' && !angle) {
      parts.push(value.slice(start, i).trim())
      start = i + 1
    }
  }
  parts.push(value.slice(start).trim())
  return parts.filter((part) => part !== '')
}

/** Splits at `;` outside quoted strings. */
function splitParams (text: string): string[] {
  const parts: string[] = []
  let start = 0
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]
    if (quoted) {
      if (ch === '\\') i++
      else if (ch === '"') quoted = false
    } else if (ch === '"') {
      quoted = true
    } else if (ch === ';') {
      parts.push(text.slice(start, i))
      start = i + 1
    }
  }
  parts.push(text.slice(start))
  return parts
}

/** `;a=1;b;c="x"` (the leading `;` optional) into a Map; names lower-cased, quoted values kept quoted. */
export function parseParams (text: string): Params | null {
  const params: Params = new Map()
  for (const raw of splitParams(text)) {
    const part = raw.trim()
    if (part === '') continue
    const eq = part.indexOf('=')
    const name = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase()
    if (!TOKEN.test(name)) return null
    params.set(name, eq === -1 ? null : part.slice(eq + 1).trim())
  }
  return params
}

export function formatParams (params: Params): string {
  let text = ''
  for (const [name, value] of params) text += value === null ? `;${name}` : `;${name}=${value}`
  return text
}

function parseHostPort (text: string): { host: string, port: number | null } | null {
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

/** One Via value: `SIP/2.0/WS host:port;branch=z9hG4bK...` (RFC 3261 §20.42). */
export function parseVia (value: string): Via | null {
  const match = /^\s*(SIP\s*\/\s*2\.0\s*\/\s*[A-Za-z0-9.!%*_+`'~-]+)\s+([^;\s]+)\s*(;.*)?$/i.exec(value)
  if (match === null) return null
  const hostport = parseHostPort(match[2])
  if (hostport === null) return null
  const params = parseParams(match[3] ?? '')
  if (params === null) return null
  return { protocol: match[1].replace(/\s+/g, '').toUpperCase(), host: hostport.host, port: hostport.port, params }
}

export function parseCSeq (value: string): CSeq | null {
  const match = /^\s*(\d{1,10})\s+([A-Za-z0-9.!%*_+`'~-]+)\s*$/.exec(value)
  if (match === null) return null
  const seq = Number(match[1])
  // RFC 3261 §8.1.1.5: the sequence number must fit in 32 bits.
  if (seq > 0xffffffff) return null
  return { seq, method: match[2] }
}

/** A host for a Via sent-by or a URI: IPv6 addresses go in brackets. */
export function formatHost (address: string): string {
  return address.includes(':') && !address.startsWith('[') ? `[${address}]` : address
}
