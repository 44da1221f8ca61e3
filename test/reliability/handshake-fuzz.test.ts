import assert from 'node:assert/strict'
import { once } from 'node:events'
import net from 'node:net'
import { describe, test } from 'node:test'
import { performance } from 'node:perf_hooks'
import { generateHandshake, type HandshakeCase } from '../helpers/handshake-fuzz'
import { runConcurrently, within } from '../helpers/pool'
import { Rng, describeBytes, fuzzSeed } from '../helpers/random'
import { acceptFor, readResponse, type RawResponse } from '../helpers/raw'
import { connect, loggedApp, nextMessage, startApp } from '../helpers/server'

const SEED = fuzzSeed()
const CASES = 3000
const CONCURRENCY = 20
const HANDSHAKE_TIMEOUT = 1000
// A stalled request gets its 408 after HANDSHAKE_TIMEOUT, every other one far sooner; 20 at a time on a
// loaded machine can delay either by this much.
const MARGIN = 1500
// libuv starts a timer from the event loop's cached clock, which can lag the real one by a few ms.
const CLOCK_SLACK = 25

type Outcome = { kind: 'response', res: RawResponse, elapsed: number } | { kind: 'closed', elapsed: number }

async function send (port: number, c: HandshakeCase): Promise<Outcome> {
  const started = performance.now()
  const socket = net.connect(port, '127.0.0.1')
  // A reset after garbage is one of the answers under test, not a failure of the client.
  socket.on('error', () => {})
  try {
    await once(socket, 'connect')
    socket.write(c.bytes)
    if (c.end) socket.end()
    const res = await readResponse(socket, HANDSHAKE_TIMEOUT + MARGIN, c.bytes.subarray(0, 5).toString('latin1') === 'HEAD ')
    return { kind: 'response', res, elapsed: performance.now() - started }
  } catch (err) {
    if ((err as Error).message.startsWith('connection closed before a response head')) return { kind: 'closed', elapsed: performance.now() - started }
    throw err
  } finally {
    socket.destroy()
  }
}

describe('handshake fuzzing', () => {
  test(`${CASES} generated upgrade requests, seed ${SEED} (FUZZ_SEED=${SEED} replays them)`, async (t) => {
    const logs = loggedApp('warn')
    let opened = 0
    let closed = 0
    let allClosed: () => void = () => {}
    const { app, port, url } = await startApp({ handshakeTimeout: HANDSHAKE_TIMEOUT }, (a) => {
      a.addWsHook('websocket:open', () => { opened++ })
      a.addWsHook('websocket:closed', () => { if (++closed === opened) allClosed() })
      a.addWsHook('websocket:message', (m) => { a.wsSend(m.id, m.data) })
    }, logs.fastifyOptions)
    const rng = new Rng(SEED)
    const target = { port, protocols: ['sip', 'msrp'] }
    const tally = { upgraded: 0, closed: 0, stalled: 0, mayStall: 0, statuses: new Map<number, number>() }
    try {
      await runConcurrently(CASES, CONCURRENCY, async (index) => {
        const c = generateHandshake(rng.fork(index), target)
        const where = (): string => `seed ${SEED} case ${index} (${c.description})\nrequest: ${describeBytes(c.bytes)}`
        let outcome: Outcome
        try {
          outcome = await within(send(port, c), HANDSHAKE_TIMEOUT + 2 * MARGIN, where)
        } catch (err) {
          throw new Error(`neither an answer nor a close: ${where()}\n${(err as Error).message}`)
        }
        if (c.stalls) tally.stalled++
        if (c.mayStall) tally.mayStall++
        if (outcome.kind === 'closed') {
          tally.closed++
          assert.equal(c.valid, false, `a valid handshake was dropped without an answer: ${where()}`)
          assert.equal(c.stalls, false, `a stalled request was closed without its 408: ${where()}`)
          return
        }
        const { res, elapsed } = outcome
        const answer = `${where()}\nresponse: ${res.statusLine} ${JSON.stringify(res.body.slice(0, 120))}`
        if (res.status === 101) {
          tally.upgraded++
          assert.equal(c.valid, true, `101 for an invalid handshake: ${answer}`)
          const key = /sec-websocket-key: *([^\r\n]*)/i.exec(c.bytes.toString('latin1'))?.[1].trim() ?? ''
          assert.equal(res.headers['sec-websocket-accept'], acceptFor(key), `wrong accept key: ${answer}`)
          assert.equal(res.headers['sec-websocket-protocol'], c.protocol, `wrong sub-protocol: ${answer}`)
          return
        }
        tally.statuses.set(res.status, (tally.statuses.get(res.status) ?? 0) + 1)
        assert.equal(c.valid, false, `a valid handshake was refused: ${answer}`)
        // A 5xx here would be the server failing, not refusing; 505 is the one meant as a refusal.
        assert.ok((res.status >= 400 && res.status < 500) || res.status === 505, `not a refusal: ${answer}`)
        // ws refuses in text/html by itself; our checks must come first so every refusal is counted and logged.
        assert.notEqual(res.headers['content-type'], 'text/html', `refused by ws past our checks: ${answer}`)
        if (c.stalls) {
          assert.equal(res.status, 408, `a stalled request must end with 408: ${answer}`)
          assert.ok(elapsed >= HANDSHAKE_TIMEOUT - CLOCK_SLACK && elapsed < HANDSHAKE_TIMEOUT + MARGIN, `408 after ${elapsed.toFixed(0)} ms: ${answer}`)
        } else if (!c.mayStall) {
          assert.notEqual(res.status, 408, `408 for a request that was complete or ended: ${answer}`)
        }
      })

      const statuses = [...tally.statuses].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}×${n}`).join(' ')
      t.diagnostic(`seed ${SEED}: ${CASES} cases: ${tally.upgraded} upgraded, ${tally.closed} closed without an answer, refused ${statuses}; ${tally.stalled} stalled (+${tally.mayStall} that might)`)
      assert.ok(tally.upgraded > CASES / 10 && tally.upgraded < CASES * 0.9, `the generator should mix valid and invalid requests (${tally.upgraded} valid)`)

      const timeouts = app.wsStats().ws_handshake_timeouts
      assert.ok(timeouts >= tally.stalled && timeouts <= tally.stalled + tally.mayStall, `ws_handshake_timeouts ${timeouts}, stalled ${tally.stalled} (+${tally.mayStall})`)
      // Every upgraded socket was destroyed by its case: each must leave the registry, closed once.
      if (closed < opened) await within(new Promise<void>((resolve) => { allClosed = resolve }), 5000, () => `${closed} of ${opened} closed events`)
      assert.equal(opened, tally.upgraded)
      assert.equal(closed, opened)
      assert.equal(app.wsDump().wscounter, 0)
      assert.equal(app.wsStats().ws_current_connections, 0)

      // Still serving: a valid handshake and a message both ways.
      const ws = await connect(url)
      ws.send('still here')
      assert.equal(String((await nextMessage(ws)).data), 'still here')
      ws.terminate()
      assert.deepEqual(logs.entries.filter((e) => e.level >= 50), [], 'nothing logged as an error')
    } finally {
      await app.close()
    }
  })
})
