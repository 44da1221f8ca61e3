import { quotedEnd, splitOutside, TOKEN, TOKEN_CLASS } from './syntax'

/**
 * Header values the example looks inside, other than URIs and Via: comma lists, `;name=value`
 * parameters, CSeq, delta-seconds and option tags (RFC 3261 §7.3.1, §20, §25). Each parser returns null
 * for text it cannot make sense of rather than throwing, because a proxy answers bad input with a 400,
 * not a crash.
 */

export type Params = Map<string, string | null>

export interface CSeq {
  seq: number
  method: string
}

/**
 * A gen-value's host form: a name, an IPv4 address or an IPv6 reference (RFC 3261 §25.1), or an IPv6
 * address without brackets, which RFC 5118 §4.5 asks to accept in Via's `received`.
 */
const HOST_VALUE = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+|[0-9A-Fa-f]*:[0-9A-Fa-f:.]+)$/

/**
 * The elements of a comma list (RFC 3261 §7.3.1), commas inside quoted strings and `<...>` left alone,
 * each trimmed. Empty elements are kept, for the checks that refuse them (`Via: a,,b`).
 */
export function listElements (value: string): string[] {
  return splitOutside(value, ',').map((part) => part.trim())
}

/** The non-empty elements of a comma list. */
export function splitList (value: string): string[] {
  return listElements(value).filter((part) => part !== '')
}

/**
 * `;a=1;b;c="x"` (the leading `;` optional) into a Map: names lower-cased, values as written (quoted
 * ones keep their quotes). LWS may surround `;` and `=` (RFC 3261 §25.1 SEMI, EQUAL). Null when a
 * parameter is empty (`;;`) or is not `token [= token / host / quoted-string]`.
 */
export function parseParams (text: string): Params | null {
  const params: Params = new Map()
  const trimmed = text.trim()
  if (trimmed === '') return params
  const parts = splitOutside(trimmed.startsWith(';') ? trimmed.slice(1) : trimmed, ';')
  for (const raw of parts) {
    const part = raw.trim()
    const eq = part.indexOf('=')
    const name = (eq === -1 ? part : part.slice(0, eq)).trim()
    if (!TOKEN.test(name)) return null
    const value = eq === -1 ? null : part.slice(eq + 1).trim()
    if (value !== null && !isGenValue(value)) return null
    params.set(name.toLowerCase(), value)
  }
  return params
}

function isGenValue (value: string): boolean {
  if (value.startsWith('"')) return quotedEnd(value, 0) === value.length
  return TOKEN.test(value) || HOST_VALUE.test(value)
}

export function formatParams (params: Params): string {
  let text = ''
  for (const [name, value] of params) text += value === null ? `;${name}` : `;${name}=${value}`
  return text
}

const CSEQ = new RegExp(`^[ \\t]*(\\d+)[ \\t]+(${TOKEN_CLASS}+)[ \\t]*$`)

/** `1*DIGIT LWS Method`; the number must fit in 32 bits (RFC 3261 §8.1.1.5). */
export function parseCSeq (value: string): CSeq | null {
  const match = CSEQ.exec(value)
  if (match === null) return null
  const seq = Number(match[1])
  if (seq > 0xffffffff) return null
  return { seq, method: match[2] }
}

/** Delta-seconds (RFC 3261 §25.1), capped instead of refused when huge (RFC 3261 §20.19 says so). */
export function parseSeconds (text: string): number | null {
  if (!/^\d+$/.test(text.trim())) return null
  return Math.min(Number(text.trim()), 0xffffffff)
}

/** A `Supported` (or `Require`) value with `tags` added where missing. */
export function withOptionTags (value: string | undefined, tags: string[]): string {
  const have = splitList(value ?? '')
  const lower = new Set(have.map((t) => t.toLowerCase()))
  return [...have, ...tags.filter((t) => !lower.has(t))].join(', ')
}
