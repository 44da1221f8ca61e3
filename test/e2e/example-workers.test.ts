import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { ClusterNodeInfo } from '../../lib'
import { idPrefix } from '../../lib/cluster/ids'
import { SipRequest, SipResponse } from '../../example/sip/message'
import { jsonRpc } from '../helpers/json-rpc'
import { startRedis, type RedisServer } from '../helpers/redis'
import { runExample, type ExampleProcess } from './example-process'
import { RawSipClient, within } from './helpers'
import { reportedSetUp } from '../helpers/set-up'

const DRAIN_MS = 1000
const LATE = 5000

describe('WORKERS=2: one port, two processes, each a node of one cluster', () => {
  let redis: RedisServer

  before(reportedSetUp(async () => { redis = await startRedis() }))
  after(async () => { await redis?.stop() })

  test('WORKERS=2 without REDIS_URL refuses to start, naming REDIS_URL', async () => {
    await assert.rejects(runExample({ WORKERS: '2', REDIS_URL: '' }), /WORKERS=2 runs 2 processes.*set REDIS_URL/)
  })

  test('two clients on different workers exchange a MESSAGE; SIGTERM to the primary drains both workers, then it exits 0', { timeout: 60_000 }, async (t) => {
    const example = await runExample({ WORKERS: '2', REDIS_URL: redis.url, DRAIN_MS: String(DRAIN_MS) })
    const clients: RawSipClient[] = []
    try {
      const first = example.lines.find((l) => typeof l.url === 'string')
      const second = await example.line((l) => typeof l.url === 'string' && l.pid !== first?.pid, 20_000, 'the second worker to listen')
      assert.equal(second.url, example.url, 'both workers on one port')
      const primary = await example.line((l) => l.msg === 'primary: workers started', 5000, 'the primary')
      assert.ok(![first?.pid, second.pid].includes(primary.pid), 'the primary forks; it serves nothing itself')

      // Each worker hears the other's heartbeat; RPC requests go to either, so ask until both said so.
      const heardBoth = new Set<string>()
      await within(10_000, 'each worker to see the other', (async () => {
        while (heardBoth.size < 2) {
          const nodes = await jsonRpc<ClusterNodeInfo[]>(example.port, 'cluster.nodes')
          if (nodes.length === 2) heardBoth.add(nodes[0].instance)
          else await new Promise((resolve) => setTimeout(resolve, 50))
        }
      })())

      /** The worker (instance) holding each open connection, by the client's port. */
      const placement = async (): Promise<Map<number, string>> => {
        const nodes = await jsonRpc<ClusterNodeInfo[]>(example.port, 'cluster.nodes')
        const dump = await jsonRpc<{ connections: string[] }>(example.port, 'cluster.dump')
        const byPort = new Map<number, string>()
        for (const line of dump.connections) {
          const match = /^(\d+): ws:127\.0\.0\.1:(\d+) ->/.exec(line)
          if (match === null) continue
          const node = nodes.find((n) => n.prefixes.includes(idPrefix(Number(match[1]))))
          if (node !== undefined) byPort.set(Number(match[2]), node.instance)
        }
        return byPort
      }
      const wsUrl = example.url.replace(/^http/, 'ws')
      clients.push(await RawSipClient.connect(wsUrl, 'alice'))
      // New connections go to the workers in turn, and RPC requests take turns too: bounded retries.
      let where = new Map<number, string>()
      for (let attempt = 0; attempt < 10; attempt++) {
        const bob = await RawSipClient.connect(wsUrl, 'bob')
        where = await placement()
        if (where.get(bob.localPort) !== undefined && where.get(bob.localPort) !== where.get(clients[0].localPort)) {
          clients.push(bob)
          break
        }
        await bob.close()
      }
      const [alice, bob] = clients
      assert.ok(bob !== undefined, `alice and bob on different workers: ${JSON.stringify([...where])}`)
      t.diagnostic(`alice on worker ${where.get(alice.localPort) ?? '?'}, bob on worker ${where.get(bob.localPort) ?? '?'}`)

      for (const client of clients) assert.equal((await client.register('127.0.0.1', 300)).kind, 'response')
      const started = performance.now()
      alice.send(alice.request('MESSAGE', 'sip:bob@127.0.0.1', { body: 'across workers' }))
      const message = await bob.next(5000)
      assert.ok(message instanceof SipRequest && message.method === 'MESSAGE')
      assert.equal(message.body.toString(), 'across workers')
      bob.send(bob.answer(message, 200, 'OK'))
      const ok = await alice.next(5000)
      assert.ok(ok instanceof SipResponse)
      assert.equal(ok.status, 200)
      t.diagnostic(`MESSAGE → 200 across workers in ${(performance.now() - started).toFixed(1)} ms`)

      const closes = clients.map(async (client) => await within(DRAIN_MS + LATE, `${client.user} to be closed`, new Promise<number>((resolve) => {
        client.ws.once('close', (code) => { resolve(code) })
      })))
      const stopping = performance.now()
      example.child.kill('SIGTERM')
      const [code] = await within(DRAIN_MS + LATE, 'the primary to exit', example.exited)
      assert.equal(code, 0)
      assert.deepEqual(await Promise.all(closes), [1001, 1001], 'each worker drained its client (1001 Going Away)')
      assert.equal(example.lines.filter((l) => l.msg === 'draining, then shutting down').length, 2, 'both workers drained')
      t.diagnostic(`SIGTERM → both workers drained and the primary exited in ${(performance.now() - stopping).toFixed(0)} ms (DRAIN_MS ${DRAIN_MS})`)
    } finally {
      await Promise.all(clients.map(async (c) => { await c.close() }))
      await killAll(example)
    }
  })
})

/**
 * Kills the primary if it is still running, and then its workers, by the pids they logged (they have not
 * exited: the primary exits only after them).
 */
async function killAll (example: ExampleProcess): Promise<void> {
  if (example.child.exitCode !== null || example.child.signalCode !== null) return
  const workers = new Set(example.lines.map((l) => l.pid).filter((pid): pid is number => typeof pid === 'number' && pid !== example.child.pid))
  await example.kill()
  for (const pid of workers) {
    try { process.kill(pid, 'SIGKILL') } catch {}
  }
}
