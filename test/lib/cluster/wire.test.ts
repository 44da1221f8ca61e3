import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { MAX_COUNTER, makeId, prefixOf } from '../../../lib/cluster/ids'
import { ANSWER, CLOSE, closeBody, decode, encode, encodeAnswer, PING, PONG, SEND_BINARY, SEND_TEXT, type Decoded, type DecodedAnswer, type Operation } from '../../../lib/cluster/wire'

const OPS: Operation[] = [SEND_TEXT, SEND_BINARY, CLOSE, PING, PONG]
const LAST_PREFIX = prefixOf({ slot: 255, epoch: 2 ** 22 - 1 })

function operation (buf: Buffer): Decoded {
  const decoded = decode(buf)
  assert.ok(decoded !== null && 'op' in decoded, `an operation: ${buf.toString('hex')}`)
  return decoded
}

function answer (buf: Buffer): DecodedAnswer {
  const decoded = decode(buf)
  assert.ok(decoded !== null && !('op' in decoded), `an answer: ${buf.toString('hex')}`)
  return decoded
}

describe('cluster wire format', () => {
  test('the message kinds are distinct bytes', () => {
    assert.equal(new Set([...OPS, ANSWER]).size, 6)
  })

  test('an operation round-trips its op, id, request and reply-to, at the edges of each field', () => {
    let checked = 0
    for (const op of OPS) {
      for (const id of [1, makeId(prefixOf({ slot: 17, epoch: 12345 }), 99), Number.MAX_SAFE_INTEGER]) {
        for (const request of [0, 1, 0xffffffff]) {
          for (const replyTo of [0, 12345, LAST_PREFIX]) {
            const buf = encode(op, id, request, replyTo, null)
            assert.equal(buf.length, 21)
            const d = operation(buf)
            assert.deepEqual([d.op, d.id, d.request, d.replyTo, d.body.length], [op, id, request, replyTo, 0])
            checked++
          }
        }
      }
    }
    assert.equal(checked, 5 * 3 * 3 * 3)
  })

  test('a text body goes as UTF-8, bytes as they are, whatever the allocator left in the buffer', () => {
    for (const text of ['', 'x', 'héllo € 😀', '\ud800 lone surrogate', 'a'.repeat(70_000)]) {
      const buf = encode(SEND_TEXT, 5, 0, 0, text)
      assert.equal(buf.length, 21 + Buffer.byteLength(text))
      assert.deepEqual(operation(buf).body, Buffer.from(text))
    }
    const bytes = new Uint8Array([0, 255, 1, 128])
    const fromArray = operation(encode(SEND_BINARY, 5, 3, 4, bytes))
    assert.deepEqual([...fromArray.body], [0, 255, 1, 128])
    const big = Buffer.alloc(100_000, 0xab)
    assert.ok(operation(encode(SEND_BINARY, 5, 3, 4, big)).body.equals(big))
    // The body is a view of the message, not a copy.
    const message = encode(SEND_BINARY, 5, 3, 4, bytes)
    assert.equal(operation(message).body.buffer, message.buffer)
  })

  test('a Close body is the code, then the reason in UTF-8, as in a Close frame', () => {
    const body = closeBody(4001, 'bye €')
    assert.equal(body.readUInt16BE(0), 4001)
    assert.equal(body.subarray(2).toString(), 'bye €')
    assert.equal(body.length, 2 + Buffer.byteLength('bye €'))
    assert.deepEqual([...closeBody(1000, '')], [0x03, 0xe8])
    const d = operation(encode(CLOSE, 9, 1, 2, closeBody(3000, 'moved')))
    assert.deepEqual([d.body.readUInt16BE(0), d.body.subarray(2).toString()], [3000, 'moved'])
  })

  test('an answer round-trips its request number, outcome and body', () => {
    const empty = encodeAnswer(7, true)
    assert.equal(empty.length, 6)
    assert.deepEqual(answer(empty), { request: 7, ok: true, body: Buffer.alloc(0) })
    const full = answer(encodeAnswer(0xffffffff, false, '{"instance":"n1","wscounter":3}'))
    assert.deepEqual([full.request, full.ok, JSON.parse(full.body.toString())], [0xffffffff, false, { instance: 'n1', wscounter: 3 }])
    // A long body never reads as an operation: the first byte says what it is.
    const long = answer(encodeAnswer(1, true, 'x'.repeat(500)))
    assert.equal(long.body.length, 500)
    // Only 1 means done.
    const odd = encodeAnswer(2, true)
    odd[5] = 2
    assert.equal(answer(odd).ok, false)
  })

  test('truncated, foreign or out-of-range messages decode to null', () => {
    assert.equal(decode(Buffer.alloc(0)), null)
    for (const op of OPS) {
      const whole = encode(op, makeId(LAST_PREFIX, MAX_COUNTER), 1, 2, null)
      for (let length = 1; length < whole.length; length++) assert.equal(decode(whole.subarray(0, length)), null, `op ${op} cut to ${length} bytes`)
    }
    const whole = encodeAnswer(1, true)
    for (let length = 1; length < whole.length; length++) assert.equal(decode(whole.subarray(0, length)), null, `an answer cut to ${length} bytes`)
    // First bytes that are no message of ours, text from another publisher among them.
    for (const first of [0, 7, 8, 123, 255]) {
      const buf = encode(PING, 5, 0, 0, 'x'.repeat(30))
      buf[0] = first
      assert.equal(decode(buf), null, `first byte ${first}`)
    }
    assert.equal(decode(Buffer.from('{"t":"hb","i":"someone else","p":[1,2,3]}')), null)
    assert.equal(decode(Buffer.from('hello from a process that shares the channel')), null)
    // An id that is no safe integer names no connection.
    for (const id of [Number.NaN, 1.5, 2 ** 53, Infinity, -Infinity]) {
      const buf = encode(SEND_TEXT, 1, 0, 0, 'x')
      buf.writeDoubleBE(id, 1)
      assert.equal(decode(buf), null, `id ${id}`)
    }
  })
})
