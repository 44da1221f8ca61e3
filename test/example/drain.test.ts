import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type WebSocket from 'ws'
import { Drain, type DrainTiming } from '../../example/drain'
import { PendingAnswers } from '../../example/proxy/pending-answers'
import { within } from '../helpers/pool'
import { closed, connect, startApp, type Started } from '../helpers/server'
import { handshakeStatus } from '../e2e/helpers'
import { reportedSetUp } from '../helpers/set-up'

const TIMING: DrainTiming = { settleMs: 50, answeredMs: 50, idleMs: 300, maxWaitMs: 1200 }
/** How long the server takes to answer an `ask`. */
const ANSWER_MS = 30

describe('Drain: each connection closed once its users moved out, when no answer is owed to it', () => {
  let server: Started
  let drain: Drain
  const open = new Set<number>()
  const events: string[] = []
  const waiting = new Set<number>()
  const pending = new PendingAnswers()

  before(reportedSetUp(async () => {
    server = await startApp({ subProtocols: ['sip'] }, (app) => {
      drain = new Drain(app, {
        connections: () => open.values(),
        moveOut: (id) => { events.push(`move ${id}`) },
        waiting: (id, lastFrameAt) => waiting.has(id) || pending.awaits(id, lastFrameAt),
        lastWentTo: (id, lastFrameAt) => pending.lastWentTo(id, lastFrameAt),
        giveUp: (id) => { events.push(`give up ${id}`) }
      }, TIMING)
      app.addWsHook('xhttp:request', drain.gate)
      app.addWsHook('websocket:open', (e) => { open.add(e.id) })
      // A server that answers each `ask` a moment later, and nothing else.
      app.addWsHook('websocket:message', (m) => {
        const ask = m.data.toString() === 'ask'
        pending.heard(m.id, ask)
        if (ask) setTimeout(() => { app.wsSend(m.id, 'answer') }, ANSWER_MS)
      })
      app.addWsHook('websocket:closed', (e) => {
        open.delete(e.id)
        pending.closed(e.id)
        events.push(`closed ${e.id} ${e.code}`)
      })
    })
  }))
  after(async () => { await server?.app.close() })

  test('idle, asking, chatty, and waiting for a moving user: each closed at its moment; new handshakes get 503', async (t) => {
    const clients: WebSocket[] = []
    const ids: number[] = []
    for (let i = 0; i < 4; i++) {
      clients.push(await connect(server.url))
      ids.push([...open].find((id) => !ids.includes(id)) ?? assert.fail('the new connection'))
    }
    const [idle, asker, chatty] = clients
    const parkedId = ids[3]
    waiting.add(parkedId)
    let asks = 0
    let answers = 0
    asker.on('message', () => { answers++ })
    const ask = (): void => { asks++; asker.send('ask') }
    // Asks 200 ms after each answer, as the e2e agents do; never idle.
    asker.on('message', () => { setTimeout(() => { if (asker.readyState === asker.OPEN) ask() }, 200) })
    ask()
    // Never quiet and never answered: closed only at maxWaitMs.
    const talk = setInterval(() => { chatty.send('\r\n\r\n') }, 25)
    const answeredAtClose = new Promise<[number, number]>((resolve) => { asker.once('close', () => { resolve([asks, answers]) }) })
    const closes = clients.map(async (ws) => { await closed(ws); return performance.now() })
    // Its last frame, just before the drain starts: idle from here.
    idle.send('hello')
    const helloAt = performance.now()
    const started = performance.now()
    const run = drain.run(0)
    assert.equal(drain.draining, true)
    assert.equal((await handshakeStatus(server.url)).status, 503)
    setTimeout(() => { waiting.delete(parkedId) }, 400)
    const [idleAt, askerAt, chattyAt, parkedAt] = (await within(Promise.all(closes), TIMING.maxWaitMs + 5000, () => 'every close')).map((at) => at - started)
    clearInterval(talk)
    await within(run, 5000, () => 'the drain to resolve')
    const [asked, answered] = await answeredAtClose
    t.diagnostic(`closed after: idle ${idleAt.toFixed(0)} ms, asking ${askerAt.toFixed(0)} ms (${asked} asks, ${answered} answers), waiting ${parkedAt.toFixed(0)} ms, chatty ${chattyAt.toFixed(0)} ms`)
    assert.ok(idleAt + started - helloAt >= TIMING.idleMs - 5, `the idle one once idleMs had passed since its last frame: ${idleAt}`)
    assert.equal(answered, asked, 'the asking one was closed with its last ask answered')
    assert.ok(askerAt < TIMING.maxWaitMs, `and soon, right after an answer: ${askerAt}`)
    assert.ok(parkedAt >= 400, `the waiting one once its request was let go: ${parkedAt}`)
    assert.ok(chattyAt >= TIMING.maxWaitMs - 5, `the chatty one at maxWaitMs: ${chattyAt}`)
    assert.ok(events.includes(`give up ${ids[2]}`), 'what the chatty one had waiting was answered first')
    for (const id of ids) {
      assert.ok(events.indexOf(`move ${id}`) < events.indexOf(`closed ${id} 1001`), `${id} moved out before it closed: ${events.join(', ')}`)
    }
    assert.equal(open.size, 0)
  })

  test('a client that left before its turn is not moved out; the drain still resolves', async () => {
    await server.app.close()
    events.length = 0
    server = await startApp({ subProtocols: ['sip'] }, (app) => {
      drain = new Drain(app, { connections: () => open.values(), moveOut: (id) => { events.push(`move ${id}`) }, waiting: () => false, lastWentTo: () => true, giveUp: () => {} }, TIMING)
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
