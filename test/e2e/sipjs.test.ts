import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { startExample, within, type Example } from './helpers'
import { loadSipJs, nextMessage, peer, send, type Peer, type SipJs } from './sipjs-node'
import { reportedSetUp } from '../helpers/set-up'

describe('sip.js UAs through the example server', () => {
  let sip: SipJs
  let example: Example
  let alice: Peer
  let bob: Peer

  before(reportedSetUp(async () => {
    sip = await loadSipJs()
    example = await startExample()
    ;[alice, bob] = await Promise.all([peer(sip, example.wsUrl, 'alice'), peer(sip, example.wsUrl, 'bob')])
  }))

  after(async () => {
    for (const p of [alice, bob]) {
      if (p === undefined) continue
      await within(5000, 'a UA to stop', p.ua.stop())
    }
    await example.app.close()
  })

  test('alice sends a MESSAGE, bob receives the same body, alice gets 200', async (t) => {
    const text = `hello bob from sip.js ☃ ${Date.now()}`
    const started = performance.now()
    const [status, message] = await within(5000, 'the MESSAGE to go through', Promise.all([send(sip, alice, 'sip:bob@127.0.0.1', text), nextMessage(bob)]))
    t.diagnostic(`MESSAGE alice → bob → 200 in ${(performance.now() - started).toFixed(1)} ms`)
    assert.equal(status, 200)
    assert.equal(message.request.body, text)
    assert.equal(message.request.from.uri.user, 'alice')
    assert.match(message.request.getHeader('via') ?? '', /;cid=\d+/)
  })

  test('bob answers back', async () => {
    const [status, message] = await within(5000, 'the reply', Promise.all([send(sip, bob, 'sip:alice@127.0.0.1', 'hi alice'), nextMessage(alice)]))
    assert.equal(status, 200)
    assert.equal(message.request.body, 'hi alice')
  })

  test('a MESSAGE to a user nobody registered gets 404', async () => {
    assert.equal(await within(5000, 'the 404', send(sip, alice, 'sip:carol@127.0.0.1', 'anyone?')), 404)
  })

  test('once bob stops (un-REGISTER, then his WebSocket closes), a MESSAGE to him gets 404', async () => {
    const closed = within(5000, 'the server to see bob leave', new Promise<void>((resolve) => {
      example.app.addWsHook('websocket:closed', () => { resolve() })
    }))
    await within(5000, 'bob to stop', bob.ua.stop())
    await closed
    assert.equal(await within(5000, 'the 404', send(sip, alice, 'sip:bob@127.0.0.1', 'gone?')), 404)
  })
})
