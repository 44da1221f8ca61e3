import assert from 'node:assert/strict'
import { after, before, beforeEach, describe, test } from 'node:test'
import IORedis from 'ioredis'
import { ClusterLocations, NodeNotKnownYet } from '../example/cluster-locations'
import { ClusterSecret } from '../example/cluster-secret'
import { RedisBindings } from '../example/redis-bindings'
import type { Binding } from '../example/registrar'
import { parseUri } from '../example/sip-header'
import { buildServer, optionsFromEnv } from '../example/server'
import { workerCount } from '../example/workers'
import { freePort } from './helpers/lwsc'
import { startRedis, type RedisServer } from './helpers/redis'
import { startApp, type Started } from './helpers/server'
import { reportedSetUp } from './helpers/set-up'

const LOCAL = { localAddress: '127.0.0.1', localPort: 8080, host: '127.0.0.1:8080', secure: false }
/** A cluster-mode id (slot 200): past 2^48 and 16 digits long, as most are. */
const BIG_ID = 200 * 2 ** 45 + 7

function binding (aor: string, contact: string, connectionId: number, expiresAt: number): Binding {
  const parsed = parseUri(contact)
  assert.ok(parsed !== null)
  return { aor, connectionId, uri: contact, parsed, params: new Map(), expiresAt }
}

const uri = (text: string): NonNullable<ReturnType<typeof parseUri>> => parseUri(text) ?? assert.fail(text)

describe('the registrar\'s bindings in a real Redis', () => {
  let redis: RedisServer
  let client: IORedis
  let now = 1_000_000
  const clock = (): number => now
  let a: RedisBindings
  let b: RedisBindings

  before(reportedSetUp(async () => {
    redis = await startRedis()
    client = new IORedis(redis.url)
  }))
  after(async () => {
    client?.disconnect()
    await redis?.stop()
  })
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
    assert.equal((await a.find(uri('sip:alice@example.com')))?.connectionId, BIG_ID, 'the newer one expired: the other is left')
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
    assert.equal((await a.find(uri('sip:bob@h')))?.connectionId, 2)
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
    assert.equal((await a.find(uri('sip:erin@h')))?.node, 'node-a')
    assert.equal(await client.exists('{sipws}:reg:node:node-b'), 0)
  })
})

describe('the cluster secret', () => {
  let redis: RedisServer
  let one: IORedis
  let two: IORedis

  before(reportedSetUp(async () => {
    redis = await startRedis()
    one = new IORedis(redis.url)
    two = new IORedis(redis.url)
  }))
  after(async () => {
    one?.disconnect()
    two?.disconnect()
    await redis?.stop()
  })

  test('the first node writes it, the others read it; after Redis lost it, reassert writes it back; a different one is told', async () => {
    const [first, second] = await Promise.all([ClusterSecret.agree(one, 'sipws'), ClusterSecret.agree(two, 'sipws')])
    assert.deepEqual(first.keys, second.keys)
    assert.notDeepEqual(first.keys.via, first.keys.flowTokens, 'one key per use')
    await one.flushall()
    assert.equal(await second.reassert(), true)
    assert.equal(await first.reassert(), true, 'the same secret: both agree still')
    await one.set('{sipws}:reg:secret', 'another')
    assert.equal(await first.reassert(), false)
  })
})

describe('ClusterLocations with a real cluster node: bindings whose node is gone', () => {
  let redis: RedisServer
  let client: IORedis
  let node: Started
  let now = 0
  const NODE_TIMEOUT = 1000

  before(reportedSetUp(async () => {
    redis = await startRedis()
    client = new IORedis(redis.url)
    node = await startApp({ cluster: { redis: redis.url, nodeTimeout: NODE_TIMEOUT } })
  }))
  after(async () => {
    await node?.app.close()
    client?.disconnect()
    await redis?.stop()
  })

  test('one of a node never heard of: 480 (an error) while this node is new, purged and not found once it has been up nodeTimeout', async () => {
    now = Date.now()
    const locations = new ClusterLocations(new RedisBindings(client, 'sipws', node.app.wsCluster.instance), node.app.wsCluster, NODE_TIMEOUT, node.app.log, () => now)
    const ghost = new RedisBindings(client, 'sipws', 'ghost-1', () => now)
    await ghost.put(binding('frank', 'sip:f1@x.invalid', 99, now + 60_000), LOCAL)
    await assert.rejects(locations.find(uri('sip:frank@h')), NodeNotKnownYet)
    now += NODE_TIMEOUT
    assert.equal(await locations.find(uri('sip:frank@h')), null)
    assert.equal(await client.exists('{sipws}:reg:node:ghost-1'), 0, 'the ghost\'s bindings were purged')
  })

  test('after Redis came back, a node never heard of is not taken for gone until nodeTimeout has passed again', async () => {
    now = Date.now()
    const locations = new ClusterLocations(new RedisBindings(client, 'sipws', node.app.wsCluster.instance), node.app.wsCluster, NODE_TIMEOUT, node.app.log, () => now)
    now += NODE_TIMEOUT
    // It may have started while Redis was away: its heartbeats are heard only now.
    locations.redisBack()
    const newcomer = new RedisBindings(client, 'sipws', 'newcomer-1', () => now)
    await newcomer.put(binding('heidi', 'sip:h1@x.invalid', 77, now + 60_000), LOCAL)
    await assert.rejects(locations.find(uri('sip:heidi@h')), NodeNotKnownYet)
    assert.equal(await client.exists('{sipws}:reg:node:newcomer-1'), 1, 'nothing purged meanwhile')
    now += NODE_TIMEOUT
    assert.equal(await locations.find(uri('sip:heidi@h')), null)
  })

  test('one of this node that the in-memory registrar no longer has (its removal failed): removed, not found', async () => {
    now = Date.now()
    const mine = new RedisBindings(client, 'sipws', node.app.wsCluster.instance, () => now)
    const locations = new ClusterLocations(mine, node.app.wsCluster, NODE_TIMEOUT, node.app.log, () => now)
    await mine.put(binding('grace', 'sip:g1@x.invalid', 5, now + 60_000), LOCAL)
    assert.equal(await locations.find(uri('sip:grace@h')), null)
    assert.deepEqual(await client.hgetall('{sipws}:reg:aor:grace'), {})
  })
})

describe('the example\'s cluster settings from the environment', () => {
  test('REDIS_URL must be a redis:// URL; WORKERS a count, above 1 only with REDIS_URL', () => {
    assert.equal(optionsFromEnv({ REDIS_URL: 'redis://127.0.0.1:6379' }).redisUrl, 'redis://127.0.0.1:6379')
    assert.equal(optionsFromEnv({ REDIS_URL: '' }).redisUrl, undefined)
    assert.throws(() => optionsFromEnv({ REDIS_URL: '127.0.0.1:6379' }), /REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL/)
    assert.equal(workerCount(undefined, undefined), 1)
    assert.equal(workerCount('1', undefined), 1)
    assert.equal(workerCount('4', 'redis://127.0.0.1:6379'), 4)
    assert.throws(() => workerCount('2', undefined), /WORKERS=2 .*set REDIS_URL/)
    assert.throws(() => workerCount('two', undefined), /WORKERS must be a whole number from 1 to 256/)
  })

  test('a Redis that cannot be reached stops the start at once, naming REDIS_URL and why', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`
    const started = performance.now()
    await assert.rejects(buildServer({ redisUrl: url }), new RegExp(`^Error: REDIS_URL: cannot use Redis at ${url}: connect ECONNREFUSED`))
    assert.ok(performance.now() - started < 5000, 'refused: no waiting for the 10 s deadline')
  })

  test('under WORKERS, worker i listens towards the core on SIP_LISTEN\'s port + i', () => {
    const core = { SIP_CORE: 'udp:127.0.0.1:5060' }
    assert.equal(optionsFromEnv({ ...core, WORKER_INDEX: '0' }).sipListen, 'udp:127.0.0.1:5070')
    assert.equal(optionsFromEnv({ ...core, WORKER_INDEX: '3' }).sipListen, 'udp:127.0.0.1:5073')
    assert.equal(optionsFromEnv({ ...core, SIP_LISTEN: 'tcp:[::1]:6000', WORKER_INDEX: '1' }).sipListen, 'tcp:[::1]:6001')
    assert.equal(optionsFromEnv({ ...core, SIP_LISTEN: 'udp:127.0.0.1:0', WORKER_INDEX: '1' }).sipListen, 'udp:127.0.0.1:0', 'port 0: each picks its own')
  })
})
