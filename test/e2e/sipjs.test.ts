import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Message, Registerer as RegistererType, UserAgent as UserAgentType } from 'sip.js' with { 'resolution-mode': 'import' }
import WebSocket from 'ws'
import { startExample, within, type Example } from './helpers'

// sip.js is an ES module; its Web transport calls `new WebSocket(url, 'sip')`, and Node 20 has no global
// WebSocket, so the `ws` package stands in (this file runs in its own process).
;(globalThis as { WebSocket?: unknown }).WebSocket = WebSocket

type SipJs = typeof import('sip.js', { with: { 'resolution-mode': 'import' } })

interface Peer {
  ua: UserAgentType
  registerer: RegistererType
  messages: Message[]
  onMessage: (() => void) | null
}

async function peer (sip: SipJs, wsUrl: string, user: string): Promise<Peer> {
  const uri = sip.UserAgent.makeURI(`sip:${user}@127.0.0.1`)
  assert.ok(uri !== undefined)
  const inbox: Pick<Peer, 'messages' | 'onMessage'> = { messages: [], onMessage: null }
  const ua = new sip.UserAgent({
    uri,
    transportOptions: { server: wsUrl, connectionTimeout: 5 },
    logLevel: 'error',
    logBuiltinEnabled: false,
    userAgentString: `e2e ${user} (sip.js)`,
    delegate: {
      onMessage: (message) => {
        void message.accept()
        inbox.messages.push(message)
        inbox.onMessage?.()
      }
    }
  })
  await within(5000, `${user} to connect`, ua.start())
  const registerer = new sip.Registerer(ua, { expires: 120 })
  await within(5000, `${user} to register`, new Promise<void>((resolve, reject) => {
    registerer.register({
      requestDelegate: {
        onAccept: () => { resolve() },
        onReject: (response) => { reject(new Error(`${user} registration refused: ${response.message.statusCode ?? 0}`)) }
      }
    }).catch(reject)
  }))
  assert.equal(registerer.state, sip.RegistererState.Registered)
  return Object.assign(inbox, { ua, registerer })
}

async function nextMessage (p: Peer): Promise<Message> {
  const queued = p.messages.shift()
  if (queued !== undefined) return queued
  await new Promise<void>((resolve) => { p.onMessage = resolve })
  p.onMessage = null
  const message = p.messages.shift()
  assert.ok(message !== undefined)
  return message
}

async function send (sip: SipJs, from: Peer, to: string, body: string): Promise<number> {
  const target = sip.UserAgent.makeURI(to)
  assert.ok(target !== undefined)
  const messager = new sip.Messager(from.ua, target, body, 'text/plain')
  return await new Promise<number>((resolve, reject) => {
    messager.message({
      requestDelegate: {
        onAccept: (response) => { resolve(response.message.statusCode ?? 0) },
        onReject: (response) => { resolve(response.message.statusCode ?? 0) }
      }
    }).catch(reject)
  })
}

describe('sip.js UAs through the example server', () => {
  let sip: SipJs
  let example: Example
  let alice: Peer
  let bob: Peer

  before(async () => {
    sip = await import('sip.js')
    example = await startExample()
    ;[alice, bob] = await Promise.all([peer(sip, example.wsUrl, 'alice'), peer(sip, example.wsUrl, 'bob')])
  })

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
