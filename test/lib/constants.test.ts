import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { describe, test } from 'node:test'
import { checkClose } from '../../lib/arguments'
import * as constants from '../../lib/constants'
import { CLOSE_ABNORMAL, CLOSE_REASONS, DUMP_LIMIT, DUMP_ORDERS, FRAME_ERROR_CLOSE_CODES, RETRY_AFTER_SECONDS, SERVER_NAME, SUB_PROTOCOL_BITS, TOKEN, TOKEN_PATTERN, VERSION, WS_VERSION } from '../../lib/constants'

const ROOT = join(__dirname, '..', '..')

describe('constants', () => {
  test('the version is the package\'s, and the server name carries it within a Ping\'s 125 bytes', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
    assert.equal(VERSION, pkg.version)
    assert.match(VERSION, /^\d+\.\d+\.\d+/)
    assert.equal(SERVER_NAME, `fastify-sip-ws (${pkg.version})`)
    assert.ok(Buffer.byteLength(SERVER_NAME) <= 125, 'the default Ping payload fits a control frame')
    assert.equal(WS_VERSION, 13)
  })

  test('a token is what RFC 7230 §3.2.6 allows, character by character', () => {
    const tchar = new Set('!#$%&\'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ')
    assert.equal(TOKEN.source, TOKEN_PATTERN)
    for (let code = 0; code < 256; code++) {
      const c = String.fromCharCode(code)
      assert.equal(TOKEN.test(c), tchar.has(c), `${JSON.stringify(c)} (${code})`)
    }
    for (const name of ['sip', 'msrp', 'kmsg', 'x-custom.v2']) assert.equal(TOKEN.test(name), true, name)
    for (const name of ['', 'sip msrp', 'sip,msrp', 'sip\n', ' sip', 'sïp', '"sip"']) assert.equal(TOKEN.test(name), false, JSON.stringify(name))
  })

  test('each close code with a reason is one an endpoint may send, its reason fits a Close frame; 1006 is never sent', () => {
    const named = Object.entries(constants).filter(([name]) => name.startsWith('CLOSE_') && name !== 'CLOSE_REASONS').map(([, code]) => code as number)
    assert.deepEqual(named.sort(), [1000, 1001, 1002, 1006, 1007, 1008, 1009, 1011])
    assert.deepEqual(Object.keys(CLOSE_REASONS).map(Number).sort(), named.filter((c) => c !== CLOSE_ABNORMAL))
    for (const [code, reason] of Object.entries(CLOSE_REASONS)) {
      checkClose(Number(code), reason)
      assert.ok(reason.length > 0)
    }
    assert.throws(() => { checkClose(CLOSE_ABNORMAL, '') }, { code: 'FST_SIPWS_INVALID_CLOSE' })
  })

  test('each of ws\'s frame errors maps to the close code ws itself gives it, and to one an endpoint may send', () => {
    // ws's receiver makes each frame error with its close code next to its error code.
    const receiver = readFileSync(join(dirname(require.resolve('ws')), 'lib', 'receiver.js'), 'utf8')
    const fromWs = new Map<string, number>()
    for (const [, status, code] of receiver.matchAll(/(\d{4}),\s*'(WS_ERR_[A-Z0-9_]+)'/g)) {
      assert.ok(!fromWs.has(code) || fromWs.get(code) === Number(status), `${code}: one close code in ws`)
      fromWs.set(code, Number(status))
    }
    assert.ok(fromWs.size >= 10, `ws's error codes read from its receiver (${fromWs.size})`)
    assert.deepEqual(Object.fromEntries([...fromWs].sort()), Object.fromEntries(Object.entries(FRAME_ERROR_CLOSE_CODES).sort()))
    for (const code of Object.values(FRAME_ERROR_CLOSE_CODES)) {
      checkClose(code, '')
      assert.ok(CLOSE_REASONS[code] !== undefined, `${code} has a reason`)
    }
  })

  test('sub-protocol bits are Kamailio\'s: one bit each, named by a token', () => {
    assert.deepEqual(SUB_PROTOCOL_BITS, { sip: 1, msrp: 2 })
    const bits = Object.values(SUB_PROTOCOL_BITS)
    for (const bit of bits) assert.equal(bit & (bit - 1), 0, `${bit} is one bit`)
    assert.equal(bits.reduce((a, b) => a | b, 0), bits.reduce((a, b) => a + b, 0), 'no bit shared')
    for (const name of Object.keys(SUB_PROTOCOL_BITS)) assert.ok(TOKEN.test(name))
  })

  test('dump orders and limit are Kamailio\'s ws.dump\'s; Retry-After is the README\'s', () => {
    assert.deepEqual(DUMP_ORDERS, ['id_hash', 'used_desc', 'used_asc'])
    assert.equal(DUMP_LIMIT, 50)
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
    const said = [...readme.matchAll(/Retry-After: (\d+)/g)].map((m) => Number(m[1]))
    assert.ok(said.length > 0)
    assert.deepEqual([...new Set(said)], [RETRY_AFTER_SECONDS])
  })
})
