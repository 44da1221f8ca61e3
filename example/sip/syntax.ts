import { isUtf8 } from 'node:buffer'

/**
 * The character classes and small scanners of RFC 3261 §25.1 that the header, URI and Via parsers share,
 * so each rule is written once.
 */

/** The characters of a `token`, as a regular expression class, for patterns that embed one. */
export const TOKEN_CLASS = "[A-Za-z0-9.!%*_+`'~-]"

/** `token`: methods, header names, parameter names, option tags, transports. */
export const TOKEN = new RegExp(`^${TOKEN_CLASS}+$`)

/** Call-ID: `word [ "@" word ]`, where a word may hold most punctuation (RFC 3261 §25.1). */
export const CALL_ID = /^[A-Za-z0-9.!%*_+`'~()<>:\\"/[\]?{}-]+(?:@[A-Za-z0-9.!%*_+`'~()<>:\\"/[\]?{}-]+)?$/

/** Linear white space, once folds are joined: spaces and tabs. */
export const LWS = /[ \t]+/

/**
 * The index just past the quoted-string that opens at `start` (a `"`), or -1 when it is not closed. A
 * quoted-pair (`\` and any character but CR and LF) does not close it.
 */
export function quotedEnd (text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    const ch = text[i]
    if (ch === '\\') {
      if (i + 1 >= text.length || text[i + 1] === '\r' || text[i + 1] === '\n') return -1
      i++
    } else if (ch === '"') {
      return i + 1
    }
  }
  return -1
}

/** The text of a quoted-string without its quotes, quoted-pairs resolved. */
export function unquote (quoted: string): string {
  return quoted.slice(1, -1).replace(/\\([\s\S])/g, '$1')
}

/**
 * Splits `text` at each `separator` outside quoted strings and `<...>` (a URI may hold the separator in
 * its parameters). Empty parts are kept: a caller that checks syntax refuses them.
 */
export function splitOutside (text: string, separator: string): string[] {
  const parts: string[] = []
  let start = 0
  let angle = false
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]
    if (ch === '"') {
      const end = quotedEnd(text, i)
      if (end === -1) break
      i = end - 1
    } else if (ch === '<') {
      angle = true
    } else if (ch === '>') {
      angle = false
    } else if (ch === separator && !angle) {
      parts.push(text.slice(start, i))
      start = i + 1
    }
  }
  parts.push(text.slice(start))
  return parts
}

/**
 * Percent-decodes a URI part (RFC 3261 §19.1.2): `%XX` to its octet, the octets read as UTF-8 (as
 * Latin-1 when they are not). Null when a `%` is not followed by two hex digits.
 */
export function unescapeUri (text: string): string | null {
  if (!text.includes('%')) return text
  if (/%(?![0-9A-Fa-f]{2})/.test(text)) return null
  return decodeText(Buffer.from(text.replace(/%([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16))), 'latin1'))
}

/** Bytes as UTF-8 text, or as Latin-1 when they are not valid UTF-8 (so every byte survives a round trip). */
export function decodeText (bytes: Buffer): string {
  return isUtf8(bytes) ? bytes.toString('utf8') : bytes.toString('latin1')
}
