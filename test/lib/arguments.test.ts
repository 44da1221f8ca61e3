import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { checkClose, checkConnectionId, dumpOrder, drainWithin, isConnectionId, isDumpOrder, isPayload, payloadError } from '../../lib/arguments'

type Coded = Error & { code?: string, statusCode?: number }

function refusal (code: string, message: RegExp): (err: Coded) => boolean {
  return (err) => {
    assert.deepEqual([err.code, err.statusCode], [code, 400])
    assert.ok(err instanceof TypeError, 'a caller\'s wrong argument is a TypeError')
    assert.match(err.message, message)
    return true
  }
}

describe('argument checks', () => {
  test('a payload is a string or bytes (a Buffer is a Uint8Array); anything else gets an error naming its type', () => {
    for (const data of ['', 'text', Buffer.from('x'), new Uint8Array(3), Buffer.alloc(0)]) {
      assert.equal(isPayload(data), true)
      assert.equal(payloadError(data), null)
    }
    for (const [data, type] of [[123, 'number'], [null, 'object'], [undefined, 'undefined'], [{ data: 'x' }, 'object'], [new ArrayBuffer(4), 'object'],
      [new Uint16Array(2), 'object'], [new DataView(new ArrayBuffer(2)), 'object'], [['a'], 'object'], [true, 'boolean'], [10n, 'bigint'], [Symbol('s'), 'symbol']] as const) {
      assert.equal(isPayload(data), false, String(type))
      const err = payloadError(data)
      assert.ok(err !== null)
      refusal('FST_SIPWS_INVALID_ARGUMENT', new RegExp(`^Invalid argument "data": expected a string, a Buffer or a Uint8Array, got ${type}$`))(err)
    }
  })

  test('a connection id is any integer; the refusal names the call and what it got', () => {
    for (const id of [0, 1, -1, Number.MAX_SAFE_INTEGER, 2 ** 60]) {
      assert.equal(isConnectionId(id), true, String(id))
      checkConnectionId(id, 'wsClose')
    }
    for (const [id, shown] of [[1.5, '1.5'], [Number.NaN, 'NaN'], [Infinity, 'Infinity'], ['12', '"12"'], [undefined, 'undefined'], [null, 'null'], [12n, 'bigint'], [{}, 'object']] as const) {
      assert.equal(isConnectionId(id), false, shown)
      assert.throws(() => { checkConnectionId(id, 'wsCluster.close') }, refusal('FST_SIPWS_BAD_CONNECTION_ID', new RegExp(`^wsCluster\\.close: expected a connection id \\(an integer\\), got ${shown.replace('.', '\\.')}$`)))
    }
  })

  test('close codes an endpoint may send (RFC 6455 §7.4) pass; the rest, at every edge, are refused', () => {
    const sendable = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]
    const refused = [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535, -1000, 1000.5, Number.NaN, Infinity, '1000' as unknown as number]
    for (const code of sendable) checkClose(code, 'ok')
    for (const code of refused) {
      assert.throws(() => { checkClose(code, 'ok') }, refusal('FST_SIPWS_INVALID_CLOSE', /^Invalid close status: .* is not a close code an endpoint may send \(1000-1003, 1007-1014, 3000-4999\)$/), String(code))
    }
    // Every code from 1000 to 5000 once: exactly the sendable ranges pass.
    let passed = 0
    for (let code = 1000; code <= 5000; code++) {
      try { checkClose(code, ''); passed++ } catch {}
    }
    assert.equal(passed, 4 + 8 + 2000)
  })

  test('a close reason is a string of at most 123 bytes, counted in UTF-8', () => {
    checkClose(1000, '')
    checkClose(1000, 'a'.repeat(123))
    checkClose(1000, '€'.repeat(41))
    const bad = refusal('FST_SIPWS_INVALID_CLOSE', /^Invalid close reason: must be a string of at most 123 bytes$/)
    assert.throws(() => { checkClose(1000, 'a'.repeat(124)) }, bad)
    assert.throws(() => { checkClose(1000, '€'.repeat(42)) }, bad, '42 characters, 126 bytes')
    assert.throws(() => { checkClose(1000, 7 as unknown as string) }, bad)
    assert.throws(() => { checkClose(1000, undefined as unknown as string) }, bad)
  })

  test('a dump order is one of Kamailio\'s three (default id_hash); another is refused by name', () => {
    assert.equal(dumpOrder(), 'id_hash')
    assert.equal(dumpOrder(undefined), 'id_hash')
    for (const order of ['id_hash', 'used_desc', 'used_asc'] as const) {
      assert.equal(isDumpOrder(order), true)
      assert.equal(dumpOrder(order), order)
    }
    for (const [order, shown] of [['ID_HASH', 'ID_HASH'], ['', ''], [null, 'null'], [1, '1'], ['used_desc ', 'used_desc ']] as const) {
      assert.equal(isDumpOrder(order), false)
      assert.throws(() => dumpOrder(order), (err: Coded) => {
        assert.deepEqual([err.code, err.statusCode], ['FST_SIPWS_BAD_DUMP_ORDER', 400])
        assert.equal(err.message, `Bad display order parameter: "${shown}"; expected id_hash, used_desc or used_asc`)
        return true
      })
    }
  })

  test('a drain\'s `within` is a whole number of milliseconds, 0 or more; the refusal shows what was given', () => {
    for (const within of [0, 1, 60_000, Number.MAX_SAFE_INTEGER]) assert.equal(drainWithin(within), within)
    // NaN is shown as NaN (JSON would say null), and a BigInt, which JSON cannot show at all, gets the typed
    // error too rather than JSON.stringify's own TypeError.
    for (const [within, shown] of [[-1, '-1'], [1.5, '1.5'], [Number.NaN, 'NaN'], [Infinity, 'Infinity'], ['1000', '"1000"'], [undefined, 'undefined'],
      [null, 'null'], [10n, 'bigint'], [{ ms: 10 }, 'object']] as const) {
      assert.throws(() => drainWithin(within), refusal('FST_SIPWS_INVALID_DRAIN', new RegExp(`^wsDrain: within must be a whole number of milliseconds, 0 or more; got ${shown.replace('.', '\\.')}$`)))
    }
  })
})
