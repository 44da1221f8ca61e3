import assert from 'node:assert/strict'
import { once } from 'node:events'
import net from 'node:net'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { describe, test } from 'node:test'
import type { FastifyBaseLogger } from 'fastify'
import type { WsClosedEvent, WsMessage, WsOpenEvent } from '../../../lib'
import { CHANNELS, type HandshakeChannelMessage } from '../../../lib/observe/channels'
import { Telemetry } from '../../../lib/observe/telemetry'
import { closed, connect, loggedApp, nextMessage, startApp } from '../../helpers/server'

describe('Telemetry', () => {
  test('open and closed lines at info carry the upgrade\'s request id and the connection id; ev.log is bound to both on every event', async (t) => {
    const log = loggedApp('info')
    const events: Array<WsOpenEvent | WsMessage | WsClosedEvent> = []
    const { app, url } = await startApp({}, (app) => {
      app.addWsHook('websocket:open', (ev) => { events.push(ev); ev.log.info('from open') })
      app.addWsHook('websocket:message', (msg) => { events.push(msg); msg.log.info('from message'); app.wsSend(msg.id, 'ok') })
      app.addWsHook('websocket:closed', (ev) => { events.push(ev); ev.log.warn('from closed') })
    }, log.fastifyOptions)
    t.after(async () => { await app.close() })
    const ws = await connect(url)
    ws.send('hi')
    await nextMessage(ws)
    ws.close(1000, 'done')
    await closed(ws)
    const lastLine = await log.next('from closed')
    const open = await log.next('fastify-sip-ws: connection open')
    const close = await log.next('fastify-sip-ws: connection closed')
    const incoming = await log.next('incoming request')
    const reqId = incoming.reqId
    assert.equal(typeof reqId, 'string')
    assert.deepEqual([open.level, open.reqId, open.connId, open.id, open.subProtocol], [30, reqId, 1, 1, 'sip'])
    assert.deepEqual([close.level, close.reqId, close.connId, close.code, close.reason, close.by], [30, reqId, 1, 1000, 'done', 'remote'])
    assert.ok(typeof close.lifetime === 'number' && close.lifetime >= 0)
    for (const msg of ['from open', 'from message']) {
      const line = await log.next(msg)
      assert.deepEqual([line.reqId, line.connId], [reqId, 1], msg)
    }
    assert.deepEqual([lastLine.level, lastLine.reqId, lastLine.connId], [40, reqId, 1])
    // The logger is one per connection, and no event shows it among its fields.
    assert.equal(new Set(events.map((e) => e.log)).size, 1)
    for (const event of events) {
      assert.equal(Object.keys(event).includes('log'), false)
      assert.equal({ ...event }.log, undefined)
    }
    assert.equal(JSON.stringify(events.at(-1)).includes('"log"'), false, 'a logged closed event shows its fields only')
    // An open or closed event is still a plain object to a strict comparison with its fields.
    for (const event of [events[0], events.at(-1)]) assert.deepStrictEqual(event, { ...event })
  })

  test('logLevel: the lines at the level given; "debug" under an info logger or "silent" writes none', async (t) => {
    for (const [logLevel, expected] of [['warn', 40], ['debug', undefined], ['silent', undefined]] as const) {
      const log = loggedApp('info')
      const { app, url } = await startApp({ logLevel }, undefined, log.fastifyOptions)
      t.after(async () => { await app.close() })
      const ws = await connect(url)
      ws.close()
      await closed(ws)
      await new Promise((resolve) => setImmediate(resolve))
      const lines = log.entries.filter((e) => e.msg?.startsWith('fastify-sip-ws: connection') === true)
      assert.deepEqual(lines.map((e) => e.level), expected === undefined ? [] : [expected, expected], logLevel)
    }
  })

  test('a refusal by any hook is a refused handshake with its status; a silent client is timed_out with 408', async (t) => {
    const seen: HandshakeChannelMessage[] = []
    const { app, port, url } = await startApp({ handshakeTimeout: 200 }, (app) => {
      app.addHook('onRequest', async (request, reply) => { if (request.url.includes('busy')) await reply.code(429).send() })
    })
    const listener = (m: unknown): void => { if ((m as HandshakeChannelMessage).app === app) seen.push(m as HandshakeChannelMessage) }
    subscribe(CHANNELS.handshake, listener)
    t.after(async () => { unsubscribe(CHANNELS.handshake, listener); await app.close() })
    await assert.rejects(connect(`${url}/?busy`), /unexpected response 429/)
    const silent = net.connect(port, '127.0.0.1')
    silent.resume()
    await once(silent, 'close')
    assert.deepEqual(seen.map((m) => [m.result, m.status, m.id, m.request === null]), [['refused', 429, null, false], ['timed_out', 408, null, true]])
    assert.ok(seen[1].duration >= 200 - 25)
    assert.equal(seen[0].remoteAddress, '127.0.0.1')
  })

  test('observed: whether anyone listens for hook timings, so no clock is read for nobody', () => {
    const telemetry = new Telemetry({} as never, console as unknown as FastifyBaseLogger, 'silent')
    assert.equal(telemetry.observed, false)
    const listener = (): void => {}
    subscribe(CHANNELS.hook, listener)
    try {
      assert.equal(telemetry.observed, true)
    } finally { unsubscribe(CHANNELS.hook, listener) }
    assert.equal(telemetry.observed, false)
  })
})
