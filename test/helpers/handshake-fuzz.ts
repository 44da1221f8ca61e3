import type { Rng } from './random'

/**
 * Generated opening handshakes and the oracle that says which of them deserve a 101.
 *
 * A case is built as a structured request (method, target, version, header lines), mutated field by field,
 * and serialized; then, for some cases, the bytes are corrupted in a way that can only make the request
 * invalid (a byte pushed into the key, an obs-fold, a header over Node's 16 KiB limit, ...). The oracle
 * judges the structured request with the rules of RFC 6455 §4.2.1 as README § Handshake applies them, on
 * the header values Node hands over (repeated headers joined with ", ", a repeated Host dropped, optional
 * whitespace trimmed), written out here independently of lib/handshake.ts.
 */

export interface HandshakeCase {
  /** What was generated, for failure messages. */
  description: string
  bytes: Buffer
  /** Half-close after writing: the server sees the end of the request stream. */
  end: boolean
  /** A valid handshake for this server: it must get 101, and nothing else may. */
  valid: boolean
  /** The sub-protocol a 101 must select (the first offered that the server enables, client's spelling). */
  protocol: string | null
  /** An unfinished request head left open: only handshakeTimeout ends it, with a 408. */
  stalls: boolean
  /** Left open unfinished after an error the parser may or may not have seen yet: a 408 or an earlier refusal. */
  mayStall: boolean
}

export interface HandshakeTarget {
  port: number
  /** Enabled sub-protocols, lower case. */
  protocols: readonly string[]
}

type Header = [name: string, value: string]

// RFC 7230 tchar.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const PRINTABLE = ' !"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~'
const TOKEN_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&\'*+^`|~'

const METHODS = ['POST', 'PUT', 'HEAD', 'OPTIONS', 'DELETE', 'PATCH', 'TRACE', 'CONNECT']
const VERSIONS = ['HTTP/1.0', 'HTTP/0.9', 'HTTP/2.0', 'HTTP/1.2', 'HTTP/3.0', 'http/1.1', 'HTTP/1.10', 'HTTP/11']
const TARGETS = ['/?token=abc', '//', '/?', '/nope', '*', '/%2F', '/#frag', '/ws', '/?a=1&b=%20', '///?x']

const VALUES: Record<string, (rng: Rng, port: number) => string> = {
  host: (rng, port) => rng.pick(['', 'example.com', 'a', '127.0.0.1', '[::1]:8080', 'h'.repeat(200), `127.0.0.1:${port}`]),
  upgrade: (rng) => rng.pick(['WebSocket', 'WEBSOCKET', 'websocket, h2c', 'h2c, websocket', 'h2c', 'web socket', '', 'websocket/13', '  websocket  ']),
  connection: (rng) => rng.pick(['upgrade', 'UPGRADE', 'keep-alive, Upgrade', 'Upgrade, keep-alive', 'close, upgrade', 'keep-alive', 'Upgradex', '', 'up grade', 'close']),
  'sec-websocket-key': (rng) => {
    const key = rng.bytes(16).toString('base64')
    return rng.pick([
      `  ${key}  `,
      'abc',
      rng.bytes(15).toString('base64'),
      rng.bytes(17).toString('base64'),
      key.slice(0, 21) + rng.pick(['B', 'x', '9', '/']) + '==',
      key.replace(/\+/g, '-').replace(/\//g, '_'),
      randomToken(rng, 24),
      '',
      key.slice(0, 22)
    ])
  },
  'sec-websocket-version': (rng) => rng.pick(['8', '7', '14', '', '013', '13.0', 'x', '  13  ', '13,13']),
  'sec-websocket-protocol': (rng) => rng.pick(['msrp', 'SIP', 'sip, msrp', 'foo, sip', 'foo', '', 'sip;x', 'sip,,msrp', 'sip, sip', ' msrp ', 'kmsg', 'MSRP, foo', 'foo, bar', 'sip , msrp'])
}
const REQUIRED = Object.keys(VALUES)
const CANONICAL: Record<string, string> = {
  host: 'Host',
  upgrade: 'Upgrade',
  connection: 'Connection',
  'sec-websocket-key': 'Sec-WebSocket-Key',
  'sec-websocket-version': 'Sec-WebSocket-Version',
  'sec-websocket-protocol': 'Sec-WebSocket-Protocol'
}

function randomToken (rng: Rng, length: number): string {
  let out = ''
  for (let i = 0; i < length; i++) out += TOKEN_CHARS[rng.int(0, TOKEN_CHARS.length - 1)]
  return out
}

function randomPrintable (rng: Rng, length: number): string {
  let out = ''
  for (let i = 0; i < length; i++) out += PRINTABLE[rng.int(0, PRINTABLE.length - 1)]
  return out
}

function randomCase (rng: Rng, name: string): string {
  let out = ''
  for (const ch of name) out += rng.bool() ? ch.toUpperCase() : ch.toLowerCase()
  return out
}

// ---- oracle ------------------------------------------------------------------------------------------

/** The value Node gives the application: trimmed; a repeated Host keeps the first, others are joined. */
function effective (headers: readonly Header[], name: string): string | undefined {
  const values = headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v.trim())
  if (values.length === 0) return undefined
  return name === 'host' ? values[0] : values.join(', ')
}

function listHas (value: string | undefined, token: string): boolean {
  return value !== undefined && value.split(',').some((part) => part.trim().toLowerCase() === token)
}

/** 16 bytes in canonical base64 (RFC 6455 §4.1 item 7): decoding and encoding again gives the same text. */
function isKey (value: string | undefined): boolean {
  if (value === undefined) return false
  const decoded = Buffer.from(value, 'base64')
  return decoded.length === 16 && decoded.toString('base64') === value
}

function pathOf (target: string): string {
  return target.split('?')[0].replace(/\/{2,}/g, '/')
}

/** The sub-protocol a 101 must name, or why there is none. */
function chosenProtocol (headers: readonly Header[], enabled: readonly string[]): string | null {
  const offered = effective(headers, 'sec-websocket-protocol')
  if (offered === undefined) return null
  const names = offered.split(',').map((part) => part.trim())
  // A list with an empty element, a non-token or a repeat is malformed, not merely unsupported.
  if (names.some((name, i) => !TOKEN.test(name) || names.indexOf(name) !== i)) return null
  return names.find((name) => enabled.includes(name.toLowerCase())) ?? null
}

function judge (method: string, target: string, version: string, headers: readonly Header[], enabled: readonly string[]): { valid: boolean, protocol: string | null } {
  const protocol = chosenProtocol(headers, enabled)
  const valid = method === 'GET' &&
    version === 'HTTP/1.1' &&
    pathOf(target) === '/' &&
    (effective(headers, 'host') ?? '') !== '' &&
    // RFC 6455 lets Upgrade list other protocols too; ws, and so this server, take "websocket" alone.
    effective(headers, 'upgrade')?.toLowerCase() === 'websocket' &&
    listHas(effective(headers, 'connection'), 'upgrade') &&
    isKey(effective(headers, 'sec-websocket-key')) &&
    effective(headers, 'sec-websocket-version') === '13' &&
    protocol !== null
  return { valid, protocol: valid ? protocol : null }
}

// ---- generator ---------------------------------------------------------------------------------------

const CORRUPTIONS = ['garbage', 'tls-hello', 'truncate', 'key-byte', 'space-before-colon', 'obs-fold', 'huge-header', 'many-headers', 'bad-method', 'nul', 'bare-lf', 'lone-cr'] as const
type Corruption = typeof CORRUPTIONS[number]

export function generateHandshake (rng: Rng, target: HandshakeTarget): HandshakeCase {
  const notes: string[] = []
  const method = rng.bool(0.85) ? 'GET' : rng.pick(METHODS)
  const path = rng.bool(0.8) ? '/' : rng.pick(TARGETS)
  const version = rng.bool(0.85) ? 'HTTP/1.1' : rng.pick(VERSIONS)
  if (method !== 'GET') notes.push(`method ${method}`)
  if (path !== '/') notes.push(`target ${path}`)
  if (version !== 'HTTP/1.1') notes.push(`version ${version}`)

  let headers: Header[] = []
  const base: Record<string, string> = {
    host: `127.0.0.1:${target.port}`,
    upgrade: 'websocket',
    connection: 'Upgrade',
    'sec-websocket-key': rng.bytes(16).toString('base64'),
    'sec-websocket-version': '13',
    'sec-websocket-protocol': 'sip'
  }
  for (const name of REQUIRED) {
    const roll = rng.next()
    if (roll < 0.04) {
      notes.push(`no ${name}`)
    } else if (roll < 0.12) {
      const value = VALUES[name](rng, target.port)
      notes.push(`${name}: ${JSON.stringify(value)}`)
      headers.push([CANONICAL[name], value])
    } else if (roll < 0.16) {
      const second = rng.bool() ? base[name] : VALUES[name](rng, target.port)
      notes.push(`${name} twice (+${JSON.stringify(second)})`)
      headers.push([CANONICAL[name], base[name]], [CANONICAL[name], second])
    } else {
      headers.push([CANONICAL[name], base[name]])
    }
  }
  for (let i = rng.int(0, 8); i > 0; i--) headers.push([`X-F${i}-${randomToken(rng, rng.int(1, 12))}`, randomPrintable(rng, rng.int(0, 60))])
  if (rng.bool(0.2)) headers.push(['Origin', rng.pick(['https://phone.example', 'null', 'http://127.0.0.1'])])
  if (rng.bool(0.1)) {
    const size = rng.int(1000, 8000)
    headers.push(['X-Pad', 'a'.repeat(size)])
    notes.push(`${size}-byte header`)
  }
  if (rng.bool(0.3)) { rng.shuffle(headers); notes.push('shuffled') }
  if (rng.bool(0.3)) { headers = headers.map(([n, v]) => [randomCase(rng, n), v]); notes.push('name case') }
  // Optional whitespace after the colon, spaces or a tab: Node trims it.
  const separator = rng.bool(0.8) ? ': ' : rng.pick([':', ':   ', ':\t'])

  const judged = judge(method, path, version, headers, target.protocols)
  const head = [`${method} ${path} ${version}`, ...headers.map(([n, v]) => `${n}${separator}${v}`)].join('\r\n') + '\r\n\r\n'
  let bytes: Buffer = Buffer.from(head, 'latin1')
  let end = rng.bool(0.2)
  let valid = judged.valid
  let stalls = false
  let mayStall = false

  if (rng.bool(0.3)) {
    const kind: Corruption = rng.pick(CORRUPTIONS)
    const corrupted = corrupt(rng, kind, head, judged.valid)
    if (corrupted !== null) {
      notes.push(`corrupt: ${kind}`)
      bytes = corrupted
      valid = false
      if (kind === 'truncate') {
        end = rng.bool(0.5)
        // A prefix of a valid request head is one still in the making: nothing but the timeout ends it. The
        // parser may refuse a prefix of an invalid one at once, or only once it has read the bad part.
        stalls = !end && judged.valid
        mayStall = !end && !judged.valid
      }
    }
  }
  if (end) notes.push('half-closed')
  return { description: notes.join('; ') || 'plain valid request', bytes, end, valid, protocol: valid ? judged.protocol : null, stalls, mayStall }
}

/** Bytes that can only be an invalid request, or null when this corruption does not apply here. */
function corrupt (rng: Rng, kind: Corruption, head: string, valid: boolean): Buffer | null {
  const keyLine = /^(sec-websocket-key)(: *)([A-Za-z0-9+/]{21}[AQgw]==)\r$/im.exec(head)
  switch (kind) {
    case 'garbage': {
      // A first byte no method starts with: the request line can never parse.
      const bytes = rng.bytes(rng.int(1, 1500))
      bytes[0] = rng.pick([0x00, 0x16, 0x80, 0xff, 0x20, 0x28, 0x0d])
      return bytes
    }
    case 'tls-hello':
      return Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]), rng.bytes(rng.int(0, 500))])
    case 'truncate':
      return Buffer.from(head.slice(0, rng.int(0, head.length - 3)), 'latin1')
    case 'key-byte': {
      // Only on a valid key: any byte pushed into 24 characters leaves 25, or a line the parser refuses.
      if (keyLine === null || !valid) return null
      const at = keyLine.index + keyLine[1].length + keyLine[2].length + rng.int(1, 22)
      return Buffer.concat([Buffer.from(head.slice(0, at), 'latin1'), Buffer.from([rng.int(0, 255)]), Buffer.from(head.slice(at), 'latin1')])
    }
    case 'space-before-colon': {
      const line = /^(upgrade|connection|sec-websocket-key|sec-websocket-version)(:)/im.exec(head)
      if (line === null) return null
      return Buffer.from(head.slice(0, line.index + line[1].length) + ' ' + head.slice(line.index + line[1].length), 'latin1')
    }
    case 'obs-fold': {
      if (keyLine === null || !valid) return null
      const at = keyLine.index + keyLine[1].length + keyLine[2].length + rng.int(2, 20)
      return Buffer.from(head.slice(0, at) + '\r\n ' + head.slice(at), 'latin1')
    }
    case 'huge-header':
      return Buffer.from(head.slice(0, -2) + `X-Huge: ${'b'.repeat(rng.int(17 * 1024, 40 * 1024))}\r\n\r\n`, 'latin1')
    case 'many-headers': {
      const lines: string[] = []
      // Node counts names and values against its 16 KiB: 2,100 of these are well over it.
      for (let i = rng.int(2100, 2600); i > 0; i--) lines.push(`X-${i}: ${'v'.repeat(rng.int(8, 16))}`)
      return Buffer.from(head.slice(0, -2) + lines.join('\r\n') + '\r\n\r\n', 'latin1')
    }
    case 'bad-method':
      return Buffer.from(rng.pick(['get', 'G ET', 'GE\tT', '\xef\xbc\xa7ET', '', 'GET\x00']) + head.slice(head.indexOf(' ')), 'latin1')
    case 'nul': {
      const line = /^(host|upgrade|connection|sec-websocket-key|sec-websocket-version)(: *)/im.exec(head)
      if (line === null) return null
      const at = line.index + line[0].length
      return Buffer.from(head.slice(0, at) + '\x00' + head.slice(at), 'latin1')
    }
    case 'bare-lf':
      return Buffer.from(head.replace(/\r\n/g, '\n'), 'latin1')
    case 'lone-cr': {
      const first = head.indexOf('\r\n')
      const at = head.indexOf('\r\n', first + 2)
      if (at === -1 || at >= head.length - 4) return null
      return Buffer.from(head.slice(0, at + 1) + head.slice(at + 2), 'latin1')
    }
  }
}
