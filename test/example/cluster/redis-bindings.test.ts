import assert from 'node:assert/strict'
import { beforeEach, describe, test } from 'node:test'
import IORedis from 'ioredis'
import { RedisBindings } from '../../../example/cluster/redis-bindings'
import type { Binding, MovingUser, RemoteBinding } from '../../../example/proxy/registrar'
import { parseUri } from '../../../example/sip/uri'
import { redisPerSuite } from '../../helpers/redis-suite'

const LOCAL = { localAddress: '127.0.0.1', localPort: 8080, host: '127.0.0.1:8080', secure: false }
/** A cluster-mode id (slot 200): past 2^48 and 16 digits long, as most are. */
const BIG_ID = 200 * 2 ** 45 + 7

function binding (aor: string, contact: string, connectionId: number, expiresAt: number, params: Array<[string, string]> = []): Binding {
  const parsed = parseUri(contact)
  assert.ok(parsed !== null)
  return { aor, connectionId, uri: contact, parsed, params: new Map(params), expiresAt }
}

/** A found binding, not a moving user. */
function bound (found: RemoteBinding | MovingUser | null): RemoteBinding | null {
  assert.ok(found === null || 'node' in found, `a binding, not ${JSON.stringify(found)}`)
  return found
}

/** JsSIP's Contact parameters (RFC 5626): one flow of one instance. */
const FLOW: Array<[string, string]> = [['reg-id', '1'], ['+sip.instance', '"<urn:uuid:0c6e1d6b-4a8e-4d8b-9a3e-1f6f0d5c1a11>"']]

const uri = (text: string): NonNullable<ReturnType<typeof parseUri>> => parseUri(text) ?? assert.fail(text)

describe('the registrar\'s bindings in a real Redis', () => {
  let client: IORedis
  let now = 1_000_000
  const clock = (): number => now
  let a: RedisBindings
  let b: RedisBindings
  redisPerSuite((_redis, connected) => { client = connected })
  beforeEach(async () => {
    await client.flushall()
    now = Date.now()
    a = new RedisBindings(client, 'sipws', 'node-a', clock)
    b = new RedisBindings(client, 'sipws', 'node-b', clock)
  })

  test('found by AOR (the newest live one) or by contact, with the connection\'s local side; not once expired', async () => {
    await a.put(binding('alice', 'sip:a1@x.invalid;transport=ws', BIG_ID, now + 60_000), LOCAL)
    now += 1
    await b.put(binding('alice', 'sip:a2@y.invalid;transport=ws', 42, now + 30_000), undefined)
    assert.deepEqual(await a.find(uri('sip:alice@example.com')), { aor: 'alice', connectionId: 42, node: 'node-b', uri: 'sip:a2@y.invalid;transport=ws', local: null })
    const byContact = await b.find(uri('sip:a1@X.INVALID'))
    assert.deepEqual(byContact, { aor: 'alice', connectionId: BIG_ID, node: 'node-a', uri: 'sip:a1@x.invalid;transport=ws', local: LOCAL })
    assert.deepEqual(await b.connection(BIG_ID), LOCAL)
    now += 30_000
    assert.equal(bound(await a.find(uri('sip:alice@example.com')))?.connectionId, BIG_ID, 'the newer one expired: the other is left')
    now += 30_000
    assert.equal(await a.find(uri('sip:alice@example.com')), null)
    assert.equal(await a.find(uri('sip:a1@x.invalid')), null)
    assert.ok(await client.pttl('{sipws}:reg:aor:alice') > 0, 'the key expires by itself too')
  })

  test('a removal takes only the binding its connection made: the same contact registered again elsewhere stays', async () => {
    const old = binding('bob', 'sip:b1@x.invalid', 1, now + 60_000)
    await a.put(old, LOCAL)
    await b.put(binding('bob', 'sip:b1@x.invalid', 2, now + 60_000), LOCAL)
    await a.remove(old)
    assert.equal(bound(await a.find(uri('sip:bob@h')))?.connectionId, 2)
    await b.remove(binding('bob', 'sip:b1@x.invalid', 2, 0))
    assert.equal(await a.find(uri('sip:bob@h')), null)
    assert.equal(await a.find(uri('sip:b1@x.invalid')), null, 'its contact index went with it')
  })

  test('purge: a node\'s bindings and connection records go, once; what another node made since stays', async () => {
    await b.put(binding('carol', 'sip:c1@x.invalid', 10, now + 60_000), LOCAL)
    await b.put(binding('dave', 'sip:d1@x.invalid', 11, now + 60_000), LOCAL)
    await b.put(binding('erin', 'sip:e1@x.invalid', 12, now + 60_000), LOCAL)
    // erin's UA came back on node A with the same contact before node B's purge.
    await a.put(binding('erin', 'sip:e1@x.invalid', 20, now + 60_000), LOCAL)
    assert.equal(await a.purge('node-b'), 2)
    assert.equal(await a.purge('node-b'), 0, 'a second survivor purging finds nothing left')
    assert.equal(await a.find(uri('sip:carol@h')), null)
    assert.equal(await a.find(uri('sip:d1@x.invalid')), null)
    assert.equal(await a.connection(10), null)
    assert.equal(bound(await a.find(uri('sip:erin@h')))?.node, 'node-a')
    assert.equal(await client.exists('{sipws}:reg:node:node-b'), 0)
  })

  test('purge checks the node\'s presence in Redis, in the same script: while its key is there, nothing goes', async () => {
    await b.put(binding('fred', 'sip:f1@x.invalid', 70, now + 60_000), LOCAL)
    // The plugin's presence key of node-b (cluster prefix 'sipws'), which only node-b writes.
    await client.set('sipws:node:node-b', '123', 'PX', 60_000)
    assert.equal(await a.purge('node-b'), -1, 'alive: a late purge after it came back removes nothing')
    assert.equal(bound(await a.find(uri('sip:fred@h')))?.connectionId, 70)
    await client.del('sipws:node:node-b')
    assert.equal(await a.purge('node-b'), 1)
    assert.equal(await a.find(uri('sip:fred@h')), null)
  })

  test('a binding removed for a drain leaves its user moving: found as such by AOR and by contact, until the grace ends', async () => {
    const mine = binding('hank', 'sip:h1@x.invalid;transport=ws', 30, now + 60_000, FLOW)
    await a.put(mine, LOCAL)
    await a.remove(mine, undefined, 5000)
    assert.deepEqual(await b.find(uri('sip:hank@h')), { aor: 'hank', movingUntil: now + 5000 })
    assert.deepEqual(await b.find(uri('sip:h1@x.invalid')), { aor: 'hank', movingUntil: now + 5000 }, 'an in-dialog request waits too')
    now += 5000
    assert.equal(await b.find(uri('sip:hank@h')), null, 'past the grace period: gone')
  })

  test('the moving user registers on another node: found there at once, and no longer moving', async () => {
    const old = binding('ivy', 'sip:i1@x.invalid;transport=ws', 31, now + 60_000, FLOW)
    await a.put(old, LOCAL)
    await a.remove(old, undefined, 10_000)
    assert.equal(await b.put(binding('ivy', 'sip:i1@x.invalid;transport=ws', 32, now + 60_000, FLOW), LOCAL), null, 'nothing left to replace')
    assert.equal(bound(await a.find(uri('sip:ivy@h')))?.node, 'node-b')
    await b.remove(binding('ivy', 'sip:i1@x.invalid', 32, 0))
    assert.equal(await a.find(uri('sip:ivy@h')), null, 'its moving mark went with its registration')
  })

  test('RFC 5626: the same flow registered over another connection replaces the old one, wherever it was, and says which', async () => {
    await a.put(binding('jack', 'sip:j1@x.invalid;transport=ws', 40, now + 60_000, FLOW), LOCAL)
    now += 1
    assert.equal(await a.put(binding('jack', 'sip:j1@x.invalid;transport=ws', 40, now + 60_000, FLOW), LOCAL), null, 'a refresh replaces nothing')
    // A UA that made up a new contact for its new connection: its flow is the same.
    assert.deepEqual(await b.put(binding('jack', 'sip:j2@y.invalid;transport=ws', 41, now + 60_000, FLOW), LOCAL), { connectionId: 40, node: 'node-a' })
    assert.equal(await client.hlen('{sipws}:reg:aor:jack'), 1, 'the old flow\'s binding is gone')
    assert.equal(await a.find(uri('sip:j1@x.invalid')), null)
    assert.equal(bound(await a.find(uri('sip:jack@h')))?.connectionId, 41)
    // The same contact over a new connection (JsSIP, SIP.js after a reconnect) is the same flow too.
    assert.deepEqual(await a.put(binding('jack', 'sip:j2@y.invalid;transport=ws', 42, now + 60_000, FLOW), LOCAL), { connectionId: 41, node: 'node-b' })
    // Another instance of the same user is another flow: both stay.
    assert.equal(await b.put(binding('jack', 'sip:j3@z.invalid', 43, now + 60_000, [['reg-id', '1'], ['+sip.instance', '"<urn:uuid:other>"']]), LOCAL), null)
    assert.equal(await client.hlen('{sipws}:reg:aor:jack'), 2)
  })
})
