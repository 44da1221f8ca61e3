import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Parking, PARKING_LIMITS, type Parked } from '../../../example/proxy/parking'
import { SipRequest } from '../../../example/sip/message'
import { parseSip } from '../../../example/sip/parse'
import { within } from '../../helpers/pool'

const MESSAGE = 'MESSAGE sip:bob@h SIP/2.0\r\nVia: SIP/2.0/WS x.invalid;branch=z9hG4bK1\r\nCall-ID: c1\r\nCSeq: 1 MESSAGE\r\nContent-Length: 2\r\n\r\nhi'

function request (): SipRequest {
  const parsed = parseSip(MESSAGE)
  assert.ok(parsed instanceof SipRequest)
  return parsed
}

/** A parked request whose tries and expiry are recorded; `deliverOn` says on which try it gets through. */
function parked (source: number, aor: string, until: number, deliverOn = Infinity): Parked & { tries: number, expired: string[], done: Promise<string> } {
  let settle: (how: string) => void = () => {}
  const done = new Promise<string>((resolve) => { settle = resolve })
  const entry = {
    source,
    message: request(),
    aor,
    until,
    tries: 0,
    expired: [] as string[],
    done,
    retry: async () => {
      entry.tries++
      if (entry.tries < deliverOn) return false
      settle('delivered')
      return true
    },
    expire: (why: string) => {
      entry.expired.push(why)
      settle(why)
    }
  }
  return entry
}

describe('Parking: requests waiting for a moving user', () => {
  test('tried every retryMs until delivered, then let go; holds() answers for its connection meanwhile', async () => {
    const lot = new Parking({ ...PARKING_LIMITS, retryMs: 20 })
    const entry = parked(7, 'bob', Date.now() + 10_000, 3)
    assert.equal(lot.hold(entry), true)
    assert.equal(lot.holds(7), true)
    assert.equal(lot.holds(8), false)
    assert.equal(await within(entry.done, 3000, () => 'the delivery'), 'delivered')
    assert.equal(entry.tries, 3)
    assert.equal(lot.size, 0)
    assert.equal(lot.holds(7), false)
    assert.ok(lot.releasedAt(7) > 0, 'when it left: its answer is on its way from then')
    assert.equal(lot.releasedAt(8), -1)
  })

  test('letGo answers one connection\'s requests at once, the others wait on', () => {
    const lot = new Parking({ ...PARKING_LIMITS, retryMs: 60_000 })
    const mine = [parked(5, 'gus', Date.now() + 10_000), parked(5, 'hal', Date.now() + 10_000)]
    const other = parked(6, 'gus', Date.now() + 10_000)
    for (const entry of [...mine, other]) lot.hold(entry)
    lot.letGo(5)
    assert.deepEqual(mine.map((e) => e.expired), [['closing'], ['closing']])
    assert.deepEqual([other.expired, lot.size, lot.holds(5), lot.holds(6)], [[], 1, false, true])
    lot.close()
  })

  test('wake(aor) tries that user\'s requests at once, and only theirs', async () => {
    const lot = new Parking({ ...PARKING_LIMITS, retryMs: 60_000 })
    const bob = parked(1, 'bob', Date.now() + 10_000, 1)
    const carol = parked(2, 'carol', Date.now() + 10_000, 1)
    lot.hold(bob)
    lot.hold(carol)
    lot.wake('bob')
    assert.equal(await within(bob.done, 3000, () => 'bob\'s request'), 'delivered')
    assert.equal(carol.tries, 0)
    assert.equal(lot.size, 1)
    lot.close()
    assert.deepEqual(carol.expired, ['closing'])
  })

  test('past its time a request is expired once, not tried again', async () => {
    let now = 1000
    const lot = new Parking({ ...PARKING_LIMITS, retryMs: 10 }, () => now)
    const entry = parked(3, 'dave', 1500)
    lot.hold(entry)
    now = 1500
    assert.equal(await within(entry.done, 3000, () => 'the expiry'), 'timeout')
    const tries = entry.tries
    lot.wake('dave')
    await new Promise((resolve) => setImmediate(resolve))
    assert.deepEqual([entry.expired, entry.tries, lot.size], [['timeout'], tries, 0])
  })

  test('bounded: past maxRequests or maxBytes, hold refuses', () => {
    const size = Buffer.byteLength(request().toString())
    const byCount = new Parking({ ...PARKING_LIMITS, maxRequests: 2 })
    assert.deepEqual([1, 2, 3].map((i) => byCount.hold(parked(i, 'erin', Date.now() + 10_000))), [true, true, false])
    const byBytes = new Parking({ ...PARKING_LIMITS, maxBytes: size * 2 + 1 })
    assert.deepEqual([1, 2, 3].map((i) => byBytes.hold(parked(i, 'erin', Date.now() + 10_000))), [true, true, false])
    byCount.close()
    byBytes.close()
    // What was let go frees its room.
    assert.equal(byBytes.hold(parked(4, 'erin', Date.now() + 10_000)), true)
    byBytes.close()
  })
})
