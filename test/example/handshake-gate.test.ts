import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { handshakeGate } from '../../example/handshake-gate'
import { handshakeStatus } from '../e2e/helpers'
import { within } from '../helpers/pool'
import { loggedApp, startApp, type Started } from '../helpers/server'
import { reportedSetUp } from '../helpers/set-up'

describe('the xhttp:request gate with lists of hosts and origins', () => {
  let server: Started
  const logged = loggedApp('warn')

  before(reportedSetUp(async () => {
    server = await startApp({ subProtocols: ['sip'] }, (app) => {
      app.addWsHook('xhttp:request', handshakeGate(['Edge.Example', '127.0.0.1'], ['http://good.example/']))
    }, logged.fastifyOptions)
  }))
  after(async () => { await server?.app.close() })

  test('a listed Host, with or without a port, from a listed Origin gets through (case and trailing slash aside)', async () => {
    assert.equal((await handshakeStatus(server.url, { origin: 'http://good.example' })).status, 101)
    assert.equal((await handshakeStatus(server.url, { origin: 'HTTP://GOOD.example', headers: { Host: 'edge.example:8443' } })).status, 101)
    assert.equal((await handshakeStatus(server.url, { origin: 'http://good.example', headers: { Host: 'edge.example' } })).status, 101)
  })

  test('a Host not listed: 403, logged; an Origin not listed or none: 403, logged', async () => {
    assert.deepEqual(await handshakeStatus(server.url, { origin: 'http://good.example', headers: { Host: 'evil.example' } }), { status: 403, body: 'Forbidden' })
    assert.equal((await within(logged.next('websocket refused: bad Host'), 3000, () => 'the log line')).host, 'evil.example')
    assert.equal((await handshakeStatus(server.url, { origin: 'http://evil.example' })).status, 403)
    assert.equal((await within(logged.next('websocket refused: origin not allowed'), 3000, () => 'the log line')).origin, 'http://evil.example')
    assert.equal((await handshakeStatus(server.url)).status, 403)
  })
})

describe('the xhttp:request gate with no lists', () => {
  let server: Started

  before(reportedSetUp(async () => {
    server = await startApp({ subProtocols: ['sip'] }, (app) => { app.addWsHook('xhttp:request', handshakeGate(undefined, undefined)) })
  }))
  after(async () => { await server?.app.close() })

  test('any Host and any Origin, or none, get through', async () => {
    assert.equal((await handshakeStatus(server.url)).status, 101)
    assert.equal((await handshakeStatus(server.url, { origin: 'http://anywhere.example', headers: { Host: 'any.example' } })).status, 101)
  })
})
