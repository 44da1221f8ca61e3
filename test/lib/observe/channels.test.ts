import assert from 'node:assert/strict'
import { channel, subscribe, unsubscribe } from 'node:diagnostics_channel'
import { describe, test } from 'node:test'
import { CHANNELS, closeChannel, epochOf, handshakeChannel, hookChannel, messageChannel, openChannel, type MessageChannelMessage } from '../../../lib/observe/channels'
import { closed, connect, nextMessage, startApp } from '../../helpers/server'

describe('diagnostics channels', () => {
  test('the names, each the channel the plugin publishes on', () => {
    assert.deepEqual(CHANNELS, {
      handshake: 'fastify-sip-ws:handshake',
      open: 'fastify-sip-ws:open',
      message: 'fastify-sip-ws:message',
      close: 'fastify-sip-ws:close',
      hook: 'fastify-sip-ws:hook'
    })
    assert.deepEqual([handshakeChannel, openChannel, messageChannel, closeChannel, hookChannel], Object.values(CHANNELS).map((name) => channel(name)))
    assert.ok(Math.abs(epochOf(performance.now()) - Date.now()) < 50)
  })

  test('nobody subscribed: no message is built, whatever flows; a subscriber gets each of its app\'s, none of another\'s', async (t) => {
    const echo = (app: Parameters<NonNullable<Parameters<typeof startApp>[1]>>[0]): void => { app.addWsHook('websocket:message', (m) => { app.wsSend(m.id, m.data) }) }
    const a = await startApp({}, echo)
    const b = await startApp({}, echo)
    t.after(async () => { await a.app.close(); await b.app.close() })
    // Counted on the channel object, and passed on to whichever publish its state (no subscriber or some) has.
    let published = 0
    messageChannel.publish = function (message: unknown) {
      published++
      ;(Object.getPrototypeOf(messageChannel) as { publish: (m: unknown) => void }).publish.call(messageChannel, message)
    }
    t.after(() => { delete (messageChannel as { publish?: unknown }).publish })
    const round = async (url: string, n: number): Promise<void> => {
      const ws = await connect(url)
      for (let i = 0; i < n; i++) {
        ws.send(`m${i}`)
        await nextMessage(ws)
      }
      ws.close()
      await closed(ws)
    }
    assert.equal(messageChannel.hasSubscribers, false)
    await round(a.url, 20)
    assert.equal(published, 0, '40 messages, no channel message')

    const seen: MessageChannelMessage[] = []
    const listener = (m: unknown): void => { if ((m as MessageChannelMessage).app === a.app) seen.push(m as MessageChannelMessage) }
    subscribe(CHANNELS.message, listener)
    t.after(() => { unsubscribe(CHANNELS.message, listener) })
    await round(a.url, 2)
    await round(b.url, 3)
    assert.equal(published, 4 + 6, 'published for both apps while subscribed')
    assert.deepEqual(seen.map((m) => [m.direction, m.size]), [['in', 2], ['out', 2], ['in', 2], ['out', 2]], 'the filter on `app` keeps a\'s')
  })
})
