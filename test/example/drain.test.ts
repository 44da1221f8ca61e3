import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { Drain } from '../../example/drain'
import { within } from '../helpers/pool'
import { closed, connect, startApp, type Started } from '../helpers/server'
import { handshakeStatus } from '../e2e/helpers'
import { reportedSetUp } from '../helpers/set-up'

const QUIET_MS = 100
const MAX_WAIT_MS = 1200

describe('Drain: each connection closed at its turn once quiet, its users moved out first', () => {
  let server: Started
  let drain: Drain
  const open = new Set<number>()
  const events: string[] = []
  const waiting = new Set<number>()

  before(reportedSetUp(async () => {
    server = await startApp({ subProtocols: ['sip'] }, (app) => {
      drain = new Drain(app, {
        connections: () => open.values(),
        moveOut: (id) => { events.push(`move ${id}`) },
        waiting: (id) => waiting.has(id),
        giveUp: (id) => { events.push(`give up ${id}`) }
      }, { quietMs: QUIET_MS, maxWaitMs: MAX_WAIT_MS })
      app.addWsHook('xhttp:request', drain.gate)
      app.addWsHook('websocket:open', (e) => { open.add(e.id) })
      app.addWsHook('websocket:closed', (e) => {
        open.delete(e.id)
        events.push(`closed ${e.id} ${e.code}`)
      })
    })
  }))
  after(async () => { await server?.app.close() })

  test('a quiet one, one that keeps talking, and one with a request waiting for a moving user; new handshakes get 503', async (t) => {
    const clients = await Promise.all([0, 1, 2].map(async () => await connect(server.url)))
    const [quiet, chatty, parked] = [...open]
    waiting.add(parked)
    // Never quiet for QUIET_MS: closed only at MAX_WAIT_MS.
    const talk = setInterval(() => { clients[1].send('\r\n\r\n') }, QUIET_MS / 4)
    const closes = clients.map(async (ws) => { await closed(ws); return performance.now() })
    const started = performance.now()
    const run = drain.run(0)
    assert.equal(drain.draining, true)
    const refused = await handshakeStatus(server.url)
    assert.equal(refused.status, 503)
    // The one whose request waits is let go once it is answered.
    setTimeout(() => { waiting.delete(parked) }, 400)
    const [quietAt, chattyAt, parkedAt] = (await within(Promise.all(closes), MAX_WAIT_MS + 5000, () => 'every close')).map((at) => at - started)
    clearInterval(talk)
    await within(run, 5000, () => 'the drain to resolve')
    t.diagnostic(`closed after: quiet ${quietAt.toFixed(0)} ms, waiting ${parkedAt.toFixed(0)} ms, chatty ${chattyAt.toFixed(0)} ms`)
    assert.ok(quietAt >= QUIET_MS - 5, `the quiet one waited out quietMs after its turn: ${quietAt}`)
    assert.ok(parkedAt >= 400, `the waiting one waited for its request: ${parkedAt}`)
    assert.ok(chattyAt >= MAX_WAIT_MS - 5, `the chatty one at maxWaitMs: ${chattyAt}`)
    for (const id of [quiet, chatty, parked]) {
      assert.ok(events.indexOf(`move ${id}`) < events.indexOf(`closed ${id} 1001`), `${id} moved out before it closed: ${events.join(', ')}`)
    }
    assert.equal(open.size, 0)
  })

  test('a client that left before its turn is not moved out; the drain still resolves', async () => {
    await server.app.close()
    events.length = 0
    server = await startApp({ subProtocols: ['sip'] }, (app) => {
      drain = new Drain(app, { connections: () => open.values(), moveOut: (id) => { events.push(`move ${id}`) }, waiting: () => false, giveUp: () => {} }, { quietMs: QUIET_MS, maxWaitMs: MAX_WAIT_MS })
      app.addWsHook('websocket:open', (e) => { open.add(e.id) })
      app.addWsHook('websocket:closed', (e) => { open.delete(e.id) })
    })
    const first = await connect(server.url)
    const [firstId] = [...open]
    const second = await connect(server.url)
    const secondId = [...open].find((id) => id !== firstId)
    const run = drain.run(600)
    // Its turn is at 600 ms; it leaves by itself first.
    second.close()
    await within(Promise.all([closed(first), run]), 5000, () => 'the drain')
    assert.deepEqual(events, [`move ${firstId}`], `not ${secondId}`)
  })
})
