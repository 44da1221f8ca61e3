import assert from 'node:assert/strict'
import dgram from 'node:dgram'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import { buildServer } from '../../example/server'
import { SipResponse } from '../../example/sip/message'
import { RawSipClient } from '../e2e/helpers'
import { freePort } from '../helpers/lwsc'
import { within } from '../helpers/pool'
import { loggedApp } from '../helpers/server'

describe('buildServer', () => {
  test('a Redis that cannot be reached stops the start at once, naming REDIS_URL and why', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`
    const started = performance.now()
    await assert.rejects(buildServer({ redisUrl: url }), new RegExp(`^Error: REDIS_URL: cannot use Redis at ${url}: connect ECONNREFUSED`))
    assert.ok(performance.now() - started < 5000, 'refused: no waiting for the 10 s deadline')
  })

  test('SIP settings are checked before anything starts', async () => {
    await assert.rejects(buildServer({ sipListen: 'udp:127.0.0.1:5070' }), /^Error: sipListen \(SIP_LISTEN\) is the edge's address towards a core/)
    await assert.rejects(buildServer({ sipCore: 'udp:nowhere:5060' }), /^Error: sipCore \(SIP_CORE\) must be udp:IP:PORT/)
  })

  test('a SIP_LISTEN port in use fails the start with the socket\'s error', async () => {
    const busy = dgram.createSocket('udp4')
    busy.bind(0, '127.0.0.1')
    await once(busy, 'listening')
    try {
      await assert.rejects(buildServer({ sipCore: 'udp:127.0.0.1:5060', sipListen: `udp:127.0.0.1:${busy.address().port}` }), { code: 'EADDRINUSE' })
    } finally {
      busy.close()
    }
  })

  test('with a core: the bridge listens and says where; a client\'s REGISTER goes to the core', async () => {
    const core = dgram.createSocket('udp4')
    core.bind(0, '127.0.0.1')
    await once(core, 'listening')
    const logged = loggedApp('info')
    const app = await buildServer({ logger: logged.fastifyOptions.logger, sipCore: `udp:127.0.0.1:${core.address().port}`, sipListen: 'udp:127.0.0.1:0' })
    try {
      const line = await within(logged.next('sip edge: bridging WebSocket clients to the core'), 3000, () => 'the log line')
      assert.equal(line.core, `udp:127.0.0.1:${core.address().port}`)
      assert.match(String(line.listen), /^udp:127\.0\.0\.1:\d+$/)
      assert.notEqual(line.listen, 'udp:127.0.0.1:0')
      await app.listen({ host: '127.0.0.1', port: 0 })
      const alice = await RawSipClient.connect(`ws://127.0.0.1:${(app.server.address() as { port: number }).port}/`, 'alice')
      const arrived = once(core, 'message') as Promise<[Buffer]>
      alice.send(alice.request('REGISTER', 'sip:example.test', { to: 'sip:alice@example.test' }))
      assert.match((await within(arrived, 3000, () => 'the REGISTER at the core'))[0].toString(), /\r\nPath: <sip:[A-Za-z0-9_-]{24}@127\.0\.0\.1:\d+;lr;ob>\r\n/)
      await alice.close()
    } finally {
      await app.close()
      core.close()
    }
  })

  test('alone: the page, REGISTER answered by the registrar, and each close logged', async () => {
    const logged = loggedApp('info')
    const app = await buildServer({ logger: logged.fastifyOptions.logger })
    try {
      const page = await app.inject({ method: 'GET', url: '/' })
      assert.equal(page.statusCode, 200)
      await app.listen({ host: '127.0.0.1', port: 0 })
      const alice = await RawSipClient.connect(`ws://127.0.0.1:${(app.server.address() as { port: number }).port}/`, 'alice')
      const registered = await alice.register()
      assert.ok(registered instanceof SipResponse)
      assert.equal(registered.status, 200)
      const id = alice.idIn(app)
      await alice.close(1000, 'bye')
      const closed = await within(logged.next('websocket closed'), 3000, () => 'the log line')
      assert.deepEqual({ id: closed.id, code: closed.code, reason: closed.reason, by: closed.by }, { id, code: 1000, reason: 'bye', by: 'remote' })
      assert.deepEqual((await within(logged.next('sip: bindings dropped with their connection'), 3000, () => 'the log line')).aors, ['alice'])
    } finally {
      await app.close()
    }
  })
})
