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

export const TOKEN = /^[A-Za-z0-9.!%*_+`'~-]+$/

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

export function parseCSeq (value: string): CSeq | null {
  const match = /^\s*(\d{1,10})\s+([A-Za-z0-9.!%*_+`'~-]+)\s*$/.exec(value)
  if (match === null) return null
  const seq = Number(match[1])
  // RFC 3261 §8.1.1.5: the sequence number must fit in 32 bits.
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
