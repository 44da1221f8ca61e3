import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import * as JsSIP from 'jssip'
import { runExample } from './example-process'
import { within } from './helpers'
import { NodeWebSocketInterface } from './jssip-node'

const DRAIN_MS = 3000
const LATE = 3000
const USERS = ['alice', 'bob', 'carol', 'dave', 'erin']

describe('the example drains on SIGTERM', () => {
  test(`JsSIP user agents, which reconnect by themselves, are closed over DRAIN_MS and turned away meanwhile; the process exits 0`, { timeout: 60_000 }, async (t) => {
    const { child, url, lines, exited } = await runExample({ DRAIN_MS: String(DRAIN_MS) })
    const wsUrl = url.replace(/^http/, 'ws')
    const sockets = USERS.map(() => new NodeWebSocketInterface(wsUrl))
    const agents = USERS.map((user, i) => new JsSIP.UA({
      sockets: [sockets[i]],
      uri: `sip:${user}@127.0.0.1`,
      register: true,
      register_expires: 120,
      // JsSIP retries after 1 to 2 s: the first agents closed try again while the drain still runs.
      connection_recovery_min_interval: 1,
      connection_recovery_max_interval: 2,
      user_agent: `drain e2e ${user}`
    }))
    try {
      await within(10_000, 'every agent to register', Promise.all(agents.map(async (ua) => {
        const registered = once(ua, 'registered')
        ua.start()
        await registered
      })))
      const started = performance.now()
      const closedAt: number[] = []
      for (const ua of agents) ua.once('disconnected', () => { closedAt.push(performance.now() - started) })
      child.kill('SIGTERM')
      const [code] = await within(DRAIN_MS + 5000 + LATE, 'the example to drain and exit', exited)
      const took = performance.now() - started
      assert.equal(code, 0)
      assert.ok(lines.some((l) => l.msg === 'draining, then shutting down'))
      const closes = lines.filter((l) => l.msg === 'websocket closed')
      assert.equal(closes.length, USERS.length)
      for (const c of closes) assert.deepEqual([c.by, c.code], ['local', 1001])
      for (const socket of sockets) assert.equal(socket.history.find((h) => h.startsWith('close')), 'close 1001', socket.history.join(', '))
      // Each agent reconnected on its own; none got back in: 503 with Retry-After while draining, then refused.
      const retries = sockets.flatMap((socket) => socket.history.slice(socket.history.indexOf('close 1001') + 1).filter((h) => !h.startsWith('close')))
      t.diagnostic(`drain over ${DRAIN_MS} ms: disconnects at ${closedAt.map((ms) => ms.toFixed(0)).join(', ')} ms; exit after ${took.toFixed(0)} ms; reconnect attempts: ${JSON.stringify(retries)}`)
      assert.ok(retries.includes('refused 503 Retry-After 5'), 'an agent tried again while the node drained and was turned away')
      for (const retry of retries) assert.match(retry, /^(refused 503 Retry-After 5|error ECONNREFUSED|error ECONNRESET)$/)
      assert.ok(closedAt.length === USERS.length && Math.max(...closedAt) - Math.min(...closedAt) >= DRAIN_MS / 2, `closes spread over the drain: ${closedAt.join(', ')}`)
    } finally {
      for (const ua of agents) ua.stop()
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }
  })
})
