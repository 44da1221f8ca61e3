import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, describe, test } from 'node:test'
import IORedis from 'ioredis'
import WebSocket from 'ws'
import { ClusterLocations } from '../../../example/cluster/locations'
import { RedisBindings } from '../../../example/cluster/redis-bindings'
import { Registrar, type Binding } from '../../../example/proxy/registrar'
import { parseUri } from '../../../example/sip/uri'
import { recordedLog } from '../../helpers/log'
import { until, within } from '../../helpers/pool'
import { startRedis, type RedisServer } from '../../helpers/redis'
import { closed, connect, startApp, type Started } from '../../helpers/server'
import { reportedSetUp } from '../../helpers/set-up'

const LOCAL = { localAddress: '127.0.0.1', localPort: 8080, host: '127.0.0.1:8080', secure: false }

function binding (aor: string, contact: string, connectionId: number, expiresAt: number): Binding {
  const parsed = parseUri(contact)
  assert.ok(parsed !== null)
  return { aor, connectionId, uri: contact, parsed, params: new Map(), expiresAt }
}

const uri = (text: string): NonNullable<ReturnType<typeof parseUri>> => parseUri(text) ?? assert.fail(text)

describe('ClusterLocations with a real cluster node: Redis is the truth, not this node\'s view', () => {
  let redis: RedisServer
  let client: IORedis
  let node: Started
  let now = 0

  before(reportedSetUp(async () => {
    redis = await startRedis()
    client = new IORedis(redis.url)
    node = await startApp({ cluster: { redis: redis.url, nodeTimeout: 1000 } })
  }))
  after(async () => {
    await node?.app.close()
    client?.disconnect()
    await redis?.stop()
  })

  test('one of a node never heard of is found, not refused and not purged: that node may have started a moment ago', async () => {
    now = Date.now()
    const locations = new ClusterLocations(new RedisBindings(client, 'sipws', node.app.wsCluster.instance), node.app.wsCluster, new Map(), node.app.log)
    const newcomer = new RedisBindings(client, 'sipws', 'newcomer-1', () => now)
    await newcomer.put(binding('frank', 'sip:f1@x.invalid', 99, now + 60_000), LOCAL)
    assert.deepEqual(await locations.find(uri('sip:frank@h')), { aor: 'frank', connectionId: 99, node: 'newcomer-1', uri: 'sip:f1@x.invalid', local: LOCAL })
    assert.equal(await client.exists('{sipws}:reg:node:newcomer-1'), 1, 'nothing purged')
  })

  test('one of this node that the in-memory registrar no longer has (its removal failed): removed, not found', async () => {
    now = Date.now()
    const mine = new RedisBindings(client, 'sipws', node.app.wsCluster.instance, () => now)
    const locations = new ClusterLocations(mine, node.app.wsCluster, new Map(), node.app.log)
    await mine.put(binding('grace', 'sip:g1@x.invalid', 5, now + 60_000), LOCAL)
    assert.equal(await locations.find(uri('sip:grace@h')), null)
    assert.deepEqual(await client.hgetall('{sipws}:reg:aor:grace'), {})
  })

  test('just after Redis came back, a user found nowhere is taken for moving for rebuildMs: its node may not have written it again yet', async () => {
    const locations = new ClusterLocations(new RedisBindings(client, 'sipws', node.app.wsCluster.instance), node.app.wsCluster, new Map(), node.app.log, { rebuildMs: 300 })
    assert.equal(await locations.find(uri('sip:otto@h')), null)
    const back = Date.now()
    locations.redisBack()
    const found = await locations.find(uri('sip:otto@h'))
    assert.ok(found !== null && 'movingUntil' in found && found.aor === 'otto' && found.movingUntil >= back + 300, JSON.stringify(found))
    await until(async () => await locations.find(uri('sip:otto@h')) === null, 3000, () => 'rebuildMs to pass')
  })

  test('purge leaves a node whose presence Redis holds, and takes one whose presence is gone', async () => {
    const locations = new ClusterLocations(new RedisBindings(client, 'sipws', node.app.wsCluster.instance), node.app.wsCluster, new Map(), node.app.log)
    // This very node: its presence is in Redis, renewed.
    const self = node.app.wsCluster.nodes()[0]
    const mine = new RedisBindings(client, 'sipws', self.instance)
    await mine.put(binding('hugo', 'sip:h1@x.invalid', 6, Date.now() + 60_000), LOCAL)
    assert.equal(await locations.purge(self.instance), -1)
    assert.equal(await client.hlen('{sipws}:reg:aor:hugo'), 1)
    await new RedisBindings(client, 'sipws', 'gone-node').put(binding('liam', 'sip:l1@x.invalid', 9, Date.now() + 60_000), LOCAL)
    assert.equal(await locations.purge('gone-node'), 1)
    assert.equal(await locations.purge('gone-node'), 0)
  })
})

describe('ClusterLocations as the registrar\'s listener, and the proxy\'s sends', () => {
  let redis: RedisServer
  let client: IORedis
  let node: Started
  const connections = new Map([[7, LOCAL]])
  const { log, next } = recordedLog('warn')

  before(reportedSetUp(async () => {
    redis = await startRedis()
    client = new IORedis(redis.url)
    node = await startApp({ cluster: { redis: redis.url } })
  }))
  after(async () => {
    await node?.app.close()
    client?.disconnect()
    await redis?.stop()
  })

  test('a binding made through a Registrar is written with its connection\'s local side; written() settles after it', async () => {
    const locations = new ClusterLocations(new RedisBindings(client, 'sipws', node.app.wsCluster.instance), node.app.wsCluster, connections, log)
    const registrar = new Registrar(32, Date.now, locations)
    const ivan = uri('sip:i1@x.invalid')
    registrar.update('ivan', 7, 'sip:i1@x.invalid', ivan, new Map(), 60)
    await locations.written()
    const other = new RedisBindings(client, 'sipws', 'another-node')
    assert.deepEqual(await other.find(uri('sip:ivan@h')), { aor: 'ivan', connectionId: 7, node: node.app.wsCluster.instance, uri: 'sip:i1@x.invalid', local: LOCAL })
    assert.deepEqual(await locations.connection(7), LOCAL)
    registrar.dropConnection(7)
    locations.closed(7)
    await locations.written()
    assert.equal(await other.find(uri('sip:ivan@h')), null, 'removed with its connection')
    assert.equal(await locations.connection(7), null, 'and the connection\'s record')
  })

  test('resync writes every binding again (Redis came back empty) and counts them', async () => {
    const locations = new ClusterLocations(new RedisBindings(client, 'sipws', node.app.wsCluster.instance), node.app.wsCluster, connections, log)
    const registrar = new Registrar(32, Date.now, locations)
    registrar.update('judy', 7, 'sip:j1@x.invalid', uri('sip:j1@x.invalid'), new Map(), 60)
    registrar.update('judy', 7, 'sip:j2@x.invalid', uri('sip:j2@x.invalid'), new Map(), 60)
    await locations.written()
    await client.flushall()
    assert.equal(locations.resync(registrar.all()), 2)
    await locations.written()
    assert.equal(await client.hlen('{sipws}:reg:aor:judy'), 2)
  })

  test('a write Redis refuses is logged, not thrown: written() still settles', async () => {
    const away = new IORedis(redis.url, { lazyConnect: true, enableOfflineQueue: false })
    const locations = new ClusterLocations(new RedisBindings(away, 'sipws', node.app.wsCluster.instance), node.app.wsCluster, connections, log)
    locations.saved(binding('kate', 'sip:k1@x.invalid', 7, Date.now() + 60_000))
    await within(locations.written(), 3000, () => 'written() to settle')
    const line = await within(next('sip cluster: binding not written to Redis'), 3000, () => 'the log line')
    assert.equal(line.aor, 'kate')
    away.disconnect()
  })

  test('send reaches a connection of the node, confirmed; a connection that is not there: false', async () => {
    const locations = new ClusterLocations(new RedisBindings(client, 'sipws', node.app.wsCluster.instance), node.app.wsCluster, connections, log)
    const ws = await connect(node.url)
    const id = node.app.wsDump().connections[0].id
    const received = once(ws, 'message') as Promise<[Buffer]>
    assert.equal(await locations.send(id, 'OPTIONS sip:x SIP/2.0\r\n\r\n'), true)
    assert.equal((await within(received, 3000, () => 'the message'))[0].toString(), 'OPTIONS sip:x SIP/2.0\r\n\r\n')
    ws.terminate()
    assert.equal(await locations.send(id + 1000, 'x'), false)
  })

  test('a connection leaving for a drain: its bindings are dropped as moving, and its user is found moving', async () => {
    const woken: string[] = []
    const locations = new ClusterLocations(new RedisBindings(client, 'sipws', node.app.wsCluster.instance), node.app.wsCluster, connections, log, { registeredHere: (aor) => { woken.push(aor) } })
    const registrar = new Registrar(32, Date.now, locations)
    registrar.update('mona', 7, 'sip:mo1@x.invalid', uri('sip:mo1@x.invalid'), new Map(), 60)
    assert.deepEqual(woken, ['mona'], 'requests waiting for her are told at once')
    locations.moving(7)
    registrar.dropConnection(7)
    locations.closed(7)
    await locations.written()
    const found = await new RedisBindings(client, 'sipws', 'another-node').find(uri('sip:mona@h'))
    assert.ok(found !== null && 'movingUntil' in found && found.movingUntil > Date.now() + 3000, JSON.stringify(found))
    // The next connection to close, not leaving, takes its bindings with it as before.
    registrar.update('mona', 7, 'sip:mo1@x.invalid', uri('sip:mo1@x.invalid'), new Map(), 60)
    registrar.dropConnection(7)
    await locations.written()
    assert.equal(await client.hlen('{sipws}:reg:aor:mona'), 0)
  })

  test('RFC 5626: the same flow registered over a new connection closes the old one', async () => {
    const flow = new Map<string, string | null>([['reg-id', '1'], ['+sip.instance', '"<urn:uuid:11111111-2222-3333-4444-555555555555>"']])
    const locations = new ClusterLocations(new RedisBindings(client, 'sipws', node.app.wsCluster.instance), node.app.wsCluster, connections, log)
    const registrar = new Registrar(32, Date.now, locations)
    const open = async (): Promise<[WebSocket, number]> => {
      const known = new Set(node.app.wsDump().connections.map((c) => c.id))
      const ws = await connect(node.url)
      const id = node.app.wsDump().connections.find((c) => !known.has(c.id))?.id ?? assert.fail('the new connection')
      return [ws, id]
    }
    const [old, oldId] = await open()
    const [fresh, freshId] = await open()
    try {
      registrar.update('nina', oldId, 'sip:n1@x.invalid', uri('sip:n1@x.invalid'), flow, 60)
      await locations.written()
      const gone = closed(old)
      registrar.update('nina', freshId, 'sip:n2@y.invalid', uri('sip:n2@y.invalid'), flow, 60)
      assert.deepEqual(await within(gone, 3000, () => 'the old flow to close'), { code: 1000, reason: 'flow replaced by a new registration' })
      assert.equal(fresh.readyState, WebSocket.OPEN)
      assert.equal((await locations.find(uri('sip:n1@x.invalid'))), null)
    } finally {
      fresh.terminate()
    }
  })
})
