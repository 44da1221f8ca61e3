import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import type { WsMessage } from '../../../lib'
import type { UpgradeRequests } from '../../../lib/handshake/upgrade'
import { startEdge } from '../../helpers/edge'
import { frame } from '../../helpers/frames'
import { within } from '../../helpers/pool'
import { handshakeLines, httpRequest, rawRequest, request } from '../../helpers/raw'
import { loggedApp } from '../../helpers/server'

async function status (port: number, first: string, extra: Record<string, string | null> = {}): Promise<number> {
  const res = await rawRequest(port, request(handshakeLines(port, extra, first)))
  res.socket.destroy()
  return res.status
}

/** A hook that holds each request until the test lets it go, and says when one is held. */
function heldHook (): { hook: () => Promise<void>, entered: (n: number) => Promise<void>, release: (how?: Error) => void, calls: () => number } {
  let calls = 0
  let waiters: Array<{ n: number, wake: () => void }> = []
  let releases: Array<(how?: Error) => void> = []
  return {
    hook: async () => {
      calls++
      for (const w of waiters.filter((w) => calls >= w.n)) w.wake()
      waiters = waiters.filter((w) => calls < w.n)
      await new Promise<void>((resolve, reject) => { releases.push((how) => { if (how === undefined) resolve(); else reject(how) }) })
    },
    entered: async (n) => { if (calls < n) await new Promise<void>((resolve) => { waiters.push({ n, wake: resolve }) }) },
    release: (how) => { for (const r of releases) r(how); releases = [] },
    calls: () => calls
  }
}

describe('UpgradeRequests', () => {
  test('a plain request on a WebSocket path: a GET with no route gets 400 naming what is supported; the rest goes on to routing', async (t) => {
    const s = await startEdge({ path: ['/ws'], subProtocols: ['sip', 'kmsg'] })
    t.after(s.close)
    const get = await httpRequest(s.port, 'GET', '/ws')
    assert.equal(get.status, 400)
    assert.equal(get.headers['sec-websocket-protocol'], 'sip, kmsg')
    assert.equal(get.headers['sec-websocket-version'], '13')
    assert.equal(get.body, 'This path expects a WebSocket upgrade (Upgrade: websocket, Connection: Upgrade)')
    assert.equal((await httpRequest(s.port, 'POST', '/ws')).status, 404, 'another method is the app\'s to answer')
    assert.equal((await httpRequest(s.port, 'GET', '/other')).status, 404, 'another path too')
    assert.equal(s.edge.stats.snapshot().ws_failed_handshakes, 0, 'no handshake was tried')
  })

  test('the path is matched without its query, repeated slashes taken as one (Kamailio\'s lwsc asks for //)', async (t) => {
    const s = await startEdge({ path: ['/ws', '/'] })
    t.after(s.close)
    for (const path of ['//', '//ws', '/ws?next=//x', '///ws', '/ws?a=b']) assert.equal(await status(s.port, `GET ${path} HTTP/1.1`), 101, path)
    // Collapsed to one slash, not dropped: "/ws//" is "/ws/", another path.
    for (const path of ['/ws//', '/ws/x', '/w', '/wss?//ws']) assert.equal(await status(s.port, `GET ${path} HTTP/1.1`), 404, path)
    assert.equal(s.edge.stats.snapshot().ws_successful_handshakes, 5)
  })

  test('bytes right behind the request head are the connection\'s first frame, with or without xhttp:request hooks', async (t) => {
    for (const withHook of [false, true]) {
      const got: WsMessage[] = []
      let heard: () => void = () => {}
      const arrived = new Promise<void>((resolve) => { heard = resolve })
      const s = await startEdge({}, (app, hooks) => {
        if (withHook) hooks.add(app, 'xhttp:request', async () => { await new Promise((resolve) => setImmediate(resolve)) })
        hooks.add(app, 'websocket:message', (m) => { got.push(m); heard() })
      })
      t.after(s.close)
      const bytes = Buffer.concat([Buffer.from(request(handshakeLines(s.port))), frame(1, 'REGISTER sip:a SIP/2.0\r\n\r\n')])
      const res = await rawRequest(s.port, bytes)
      assert.equal(res.status, 101)
      await within(arrived, 5000, () => `the first frame was lost (hook: ${String(withHook)})`)
      assert.deepEqual(got.map((m) => m.data), ['REGISTER sip:a SIP/2.0\r\n\r\n'])
      res.socket.destroy()
    }
  })

  test('while the node is leaving the hooks are not run: the request gets the 503 at once', async (t) => {
    const held = heldHook()
    const s = await startEdge({}, (app, hooks) => { hooks.add(app, 'xhttp:request', held.hook) })
    t.after(async () => { held.release(); await s.close() })
    await s.edge.lifecycle.drain(0)
    const res = await rawRequest(s.port, request(handshakeLines(s.port)))
    res.socket.destroy()
    assert.deepEqual([res.status, res.headers['retry-after'], res.body], [503, '5', 'WebSocket service draining: connect to another node'])
    assert.equal(held.calls(), 0)
    assert.equal(s.edge.stats.snapshot().ws_failed_handshakes, 1)
  })

  test('a hook that settles after hookTimeout: its request keeps the 503, nothing is accepted, a late failure is only logged', async (t) => {
    for (const late of ['resolves', 'rejects'] as const) {
      const held = heldHook()
      const log = loggedApp('warn')
      const s = await startEdge({ hookTimeout: 100 }, (app, hooks) => { hooks.add(app, 'xhttp:request', held.hook) }, log.fastifyOptions)
      t.after(s.close)
      const res = await rawRequest(s.port, request(handshakeLines(s.port)))
      let after = ''
      res.socket.on('data', (chunk: Buffer) => { after += chunk.toString('latin1') })
      assert.deepEqual([res.status, res.body], [503, 'The server could not decide on this upgrade within 100 ms'])
      const warned = await log.next('hook still running after hookTimeout')
      assert.deepEqual([warned.hookTimeout, warned.url], [100, '/'])
      held.release(late === 'rejects' ? new Error('too late') : undefined)
      if (late === 'rejects') {
        const entry = await log.next('xhttp:request hook failed after its request was answered')
        assert.equal((entry.err as { message: string }).message, 'too late')
      } else {
        // The hook's continuation runs in the microtasks of this turn; the next turn sees what it did.
        await new Promise((resolve) => setImmediate(resolve))
      }
      if (!res.socket.destroyed) await once(res.socket, 'close')
      assert.equal(after, '', 'nothing followed the 503')
      const stats = s.edge.stats.snapshot()
      assert.deepEqual([s.edge.registry.size, stats.ws_successful_handshakes, stats.ws_failed_handshakes], [0, 0, 1], late)
    }
  })

  test('refusePending answers every request still in its hooks with the refusal given, once', async (t) => {
    const held = heldHook()
    const s = await startEdge({}, (app, hooks) => { hooks.add(app, 'xhttp:request', held.hook) })
    t.after(async () => { held.release(); await s.close() })
    const answers = [0, 1].map(async () => await rawRequest(s.port, request(handshakeLines(s.port))))
    await held.entered(2)
    const upgrades: UpgradeRequests = s.edge.upgrades
    upgrades.refusePending({ status: 503, headers: { 'Retry-After': '5' }, message: 'WebSocket service shutting down' })
    for (const res of await Promise.all(answers)) {
      assert.deepEqual([res.status, res.headers['retry-after'], res.body], [503, '5', 'WebSocket service shutting down'])
      res.socket.destroy()
    }
    upgrades.refusePending({ status: 500, message: 'again' })
    held.release()
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(s.edge.stats.snapshot().ws_failed_handshakes, 2, 'each request answered once')
    assert.equal(s.edge.registry.size, 0)
  })

  test('listen() puts its listener first; stopListening() takes it, and only it, away', async (t) => {
    const s = await startEdge()
    t.after(s.close)
    const listeners = s.app.server.listeners('upgrade')
    assert.ok(listeners.length >= 2, 'ours and @fastify/websocket\'s')
    s.edge.upgrades.stopListening()
    assert.deepEqual(s.app.server.listeners('upgrade'), listeners.slice(1))
    s.edge.upgrades.stopListening()
    assert.deepEqual(s.app.server.listeners('upgrade'), listeners.slice(1), 'a second call changes nothing')
  })
})
