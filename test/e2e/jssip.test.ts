import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import * as JsSIP from 'jssip'
import { splitList } from '../../example/sip/headers'
import { parseVia } from '../../example/sip/via'
import { parseSip } from '../../example/sip/parse'
import { startExample, within, type Example } from './helpers'
import { incomingMessage, registered, send, stop, userAgent } from './jssip-node'
import { reportedSetUp } from '../helpers/set-up'

describe('JsSIP UAs through the example server', () => {
  let example: Example
  let alice: JsSIP.UA
  let bob: JsSIP.UA
  /** Every SIP message the server received, as the UAs sent it. */
  const seen: string[] = []

  before(reportedSetUp(async () => {
    JsSIP.debug.disable()
    example = await startExample()
    example.app.addWsHook('websocket:message', (m) => { seen.push(m.data.toString()) })
    alice = userAgent(example.wsUrl, 'alice').ua
    bob = userAgent(example.wsUrl, 'bob').ua
    const both = Promise.all([registered(alice, 'alice'), registered(bob, 'bob')])
    alice.start()
    bob.start()
    await both
  }))

  after(async () => {
    await Promise.all([stop(alice, 'alice'), stop(bob, 'bob')])
    await example.app.close()
  })

  test('both are registered, each over its own WebSocket', async () => {
    const dump = example.app.wsDump()
    assert.equal(dump.wscounter, 2)
    assert.deepEqual(dump.connections.map((c) => c.subProtocol), ['sip', 'sip'])
    const rpc = await example.app.inject({ method: 'POST', url: '/RPC', payload: { jsonrpc: '2.0', id: 1, method: 'ws.dump' } })
    const body = rpc.json<{ result: { connections: string[], info: { wscounter: number } } }>()
    assert.equal(body.result.info.wscounter, 2)
    assert.match(body.result.connections[0], /ws:127\.0\.0\.1:\d+ -> ws:127\.0\.0\.1:\d+ \(state: OPEN/)
  })

  test('alice sends a MESSAGE, bob receives the same body, alice gets 200', async (t) => {
    const text = `hello bob ☃ ${Date.now()}`
    const started = performance.now()
    const received = incomingMessage(bob)
    const [result, event] = await within(5000, 'the MESSAGE to go through', Promise.all([send(alice, 'sip:bob@127.0.0.1', text), received]))
    t.diagnostic(`MESSAGE alice → bob → 200 in ${(performance.now() - started).toFixed(1)} ms`)
    assert.deepEqual(result, { ok: true, status: 200, reason: 'OK' })
    assert.equal(event.request.body, text)
    assert.equal(event.request.from.uri.user, 'alice')
    // What the proxy did on the way (RFC 3261 §16.6): its own Via on top naming alice's connection, and
    // one hop less than alice sent.
    const sent = seen.map((raw) => parseSip(raw)).find((m) => m.kind === 'request' && m.method === 'MESSAGE' && m.body.toString() === text)
    assert.ok(sent !== undefined)
    const vias = event.request.getHeaders('via').flatMap(splitList)
    assert.equal(vias.length, 2)
    const top = parseVia(vias[0])
    assert.ok(top !== null)
    assert.match(top.params.get('branch') ?? '', /^z9hG4bK/)
    assert.match(top.params.get('cid') ?? '', /^\d+$/)
    assert.equal(event.request.getHeader('max-forwards'), String(Number(sent.get('max-forwards')) - 1))
    const aliceConnection = example.app.wsDump().connections.find((c) => c.id === Number(top.params.get('cid')))
    assert.ok(aliceConnection !== undefined, 'the cid names an open connection')
  })

  test('bob answers back; both directions work on the same registrations', async () => {
    const received = incomingMessage(alice)
    const [result, event] = await within(5000, 'the reply MESSAGE', Promise.all([send(bob, 'sip:alice@127.0.0.1', 'hi alice'), received]))
    assert.equal(result.status, 200)
    assert.equal(event.request.body, 'hi alice')
  })

  test('a MESSAGE to a user nobody registered gets 404', async () => {
    const result = await within(5000, 'the 404', send(alice, 'sip:carol@127.0.0.1', 'anyone?'))
    assert.deepEqual(result, { ok: false, status: 404, reason: 'Not Found' })
  })

  test('once bob unregisters (Contact ;expires=0), a MESSAGE to him gets 404', async () => {
    const gone = within(5000, 'bob to unregister', new Promise<void>((resolve) => { bob.once('unregistered', () => { resolve() }) }))
    bob.unregister()
    await gone
    const result = await within(5000, 'the 404', send(alice, 'sip:bob@127.0.0.1', 'still there?'))
    assert.equal(result.status, 404)
  })
})
