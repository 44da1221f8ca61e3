/**
 * One bench target in its own process, so it never shares an event loop with the load:
 *
 *   A  this plugin: registry, hooks, statistics and keepalive on; the OPTIONS answered in a
 *      `websocket:message` hook. Each handshake runs two `xhttp:request` hooks first, a sync one and an
 *      async one, as an app checking an Origin and then a token would. It also serves GET /lwsc, which
 *      relays through `app.lwsc` (measure 5). run.ts also starts it as A-copy (the control: an identical
 *      second A) and as A-js (ws without its native `bufferutil`: WS_NO_BUFFER_UTIL=1).
 *   A-async  the same with an async message hook (it awaits a resolved promise): each message then goes
 *      through the connection's ordered hook queue.
 *   A2  A in 2 node:cluster workers sharing one port (WORKERS sets how many); the primary only hands out
 *      connections. With BENCH_REDIS set, each worker turns cluster mode on with that Redis.
 *   B  plain fastify + @fastify/websocket: a `{ websocket: true }` route.
 *   C  raw `ws` WebSocketServer on node:http.
 *
 * Started by run.ts with `fork` (IPC): it sends `{ port }` when listening and answers `{ cmd: 'mem' }` with
 * its memory after a full GC (`{ cmd: 'snapshot', file }` writes a heap snapshot). For bench/costs.ts it
 * also counts its garbage collections (`{ cmd: 'gc' }`) and samples what it allocates (`{ cmd:
 * 'alloc-start' }`, `{ cmd: 'alloc-stop' }`), and BENCH_OFF switches parts of A's message path off
 * (bench/ablate.ts). Each picks sub-protocol `sip` when offered, as Kamailio does.
 */
import websocket from '@fastify/websocket'
import Fastify, { type FastifyInstance } from 'fastify'
import cluster from 'node:cluster'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8'
import { WebSocketServer, type WebSocket } from 'ws'
import sipWs, { type SipWsOptions, type WsMessage } from '../lib'
import { partsOff, switchOff } from './ablate'
import { takeGcCount, watchGc } from './gc-count'
import { startSampling, stopSampling } from './heap-sampling'
import { answerOptions, optionsRequest } from './sip'

export type TargetKind = 'A' | 'A-async' | 'A2' | 'B' | 'C'
export interface TargetMemory { rss: number, heapUsed: number, external: number, arrayBuffers: number }
export type TargetReply = { port: number } | { mem: TargetMemory }

const pickSip = (offered: Set<string>): string | false => offered.has('sip') ? 'sip' : (offered.values().next().value ?? false)

/** B and C answer on the socket the message came on, as A's hook does through wsSend. */
function answerOn (ws: WebSocket): void {
  ws.on('message', (data, isBinary) => {
    if (isBinary) return
    const answer = answerOptions(data.toString())
    if (answer !== null) ws.send(answer)
  })
}

/**
 * What an app's `xhttp:request` hooks cost on each handshake: a sync check of a header, then an async one
 * (a lookup that answers at once, as a cache hit would). Neither refuses the bench's requests.
 */
function addRequestHooks (app: FastifyInstance): void {
  app.addWsHook('xhttp:request', (request, reply) => {
    if (request.headers['x-bench-refuse'] !== undefined) void reply.code(403).send()
  })
  app.addWsHook('xhttp:request', async (request, reply) => {
    if (await Promise.resolve(request.headers['x-bench-refuse-later']) !== undefined) void reply.code(403).send()
  })
}

async function startA (async: boolean): Promise<number> {
  const app = Fastify({ logger: false })
  // The defaults: Ping keepalive after 180 s idle, swept every second; statistics always on.
  const options: SipWsOptions = { keepaliveMechanism: 1 }
  const redis = process.env.BENCH_REDIS
  // Cluster mode (SPEC §7): run.ts starts a redis-server and sets BENCH_REDIS for A2's workers, which are
  // then nodes of one registry, as `WORKERS=2 REDIS_URL=... npm run example` runs.
  if (redis !== undefined) options.cluster = { redis }
  await app.register(sipWs, options)
  addRequestHooks(app)
  const answer = (msg: WsMessage): void => {
    if (typeof msg.data !== 'string') return
    const text = answerOptions(msg.data)
    if (text !== null) app.wsSend(msg.id, text)
  }
  if (async) app.addWsHook('websocket:message', async (msg) => { await Promise.resolve(); answer(msg) })
  else app.addWsHook('websocket:message', answer)
  const lwscPayload = optionsRequest('lwsc-A')
  app.get<{ Querystring: { url: string, proto?: string } }>('/lwsc', async (request) => {
    return await app.lwsc.requestProto(request.query.url, request.query.proto ?? 'sip', lwscPayload)
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return (app.server.address() as AddressInfo).port
}

/**
 * The cluster primary: forks the workers, each an A listening on port 0, which node:cluster turns into one
 * shared port (the primary accepts and hands connections out round-robin). Resolves with that port once
 * every worker listens.
 */
async function startA2 (): Promise<number> {
  const workers = Number(process.env.WORKERS ?? 2)
  const ports = await Promise.all(Array.from({ length: workers }, async () => await new Promise<number>((resolve, reject) => {
    const worker = cluster.fork()
    worker.once('listening', (address) => { resolve(address.port) })
    worker.once('exit', (code) => { reject(new Error(`A2 worker exited with ${String(code)} before listening`)) })
  })))
  if (new Set(ports).size !== 1) throw new Error(`A2 workers listen on different ports: ${ports.join(', ')}`)
  return ports[0]
}

async function startB (): Promise<number> {
  const app = Fastify({ logger: false })
  await app.register(websocket, { options: { perMessageDeflate: false, handleProtocols: pickSip } })
  app.get('/', { websocket: true }, (socket) => { answerOn(socket) })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return (app.server.address() as AddressInfo).port
}

async function startC (): Promise<number> {
  const server = http.createServer((_req, res) => { res.writeHead(426).end() })
  const wss = new WebSocketServer({ server, perMessageDeflate: false, handleProtocols: pickSip })
  wss.on('connection', answerOn)
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  return (server.address() as AddressInfo).port
}

function memory (): TargetMemory {
  // Two passes: the first may only finalize what the second frees.
  global.gc?.()
  global.gc?.()
  const m = process.memoryUsage()
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers }
}

if (require.main === module && cluster.isWorker) {
  // An A2 worker: serves until the primary goes.
  process.setSourceMapsEnabled(false)
  process.on('disconnect', () => { process.exit(0) })
  startA(false).catch((err: unknown) => { process.stderr.write(`${String((err as Error).stack)}\n`); process.exit(1) })
} else if (require.main === module) {
  // tsx turns source maps on, which makes every Error's stack cost a source-map lookup; ws builds an error
  // on most closes. A server in production runs compiled JS without them, so the bench does too.
  process.setSourceMapsEnabled(false)
  switchOff(partsOff(process.env.BENCH_OFF))
  // Only where asked (bench/costs.ts): the observer is work of its own on every collection.
  if (process.env.BENCH_GC === '1') watchGc()
  const kind = process.argv[2] as TargetKind
  // BENCH_BESIDE=A (or B): C served from a process that also runs an idle A (or B), its heap, code and
  // timers, to tell what A's message path costs from what the process around it costs (bench/ablate.ts).
  const beside = process.env.BENCH_BESIDE
  const besideThen = async (): Promise<number> => { await (beside === 'A' ? startA(false) : startB()); return await startC() }
  const start = { A: async () => await startA(false), 'A-async': async () => await startA(true), A2: startA2, B: startB, C: beside === 'A' || beside === 'B' ? besideThen : startC }[kind]
  if (start === undefined || process.send === undefined) throw new Error('usage: fork(bench/target.ts, [A|A-async|A2|B|C])')
  start().then((port) => {
    process.send?.({ port } satisfies TargetReply)
    process.on('message', (m: { cmd: string, file?: string }) => {
      if (m.cmd === 'mem') process.send?.({ mem: memory() } satisfies TargetReply)
      if (m.cmd === 'stop') process.exit(0)
      if (m.cmd === 'gc') process.send?.({ gc: takeGcCount(), newSpace: getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size })
      if (m.cmd === 'alloc-start') void startSampling(256).then(() => process.send?.({ sampling: true }))
      if (m.cmd === 'alloc-stop') void stopSampling().then((allocations) => process.send?.({ allocations }))
      // For finding what an idle connection keeps alive: diff two snapshots by constructor.
      if (m.cmd === 'snapshot' && m.file !== undefined) {
        memory()
        writeHeapSnapshot(m.file)
        process.send?.({ snapshot: m.file })
      }
    })
    process.on('disconnect', () => { process.exit(0) })
  }, (err: unknown) => { process.stderr.write(`${String((err as Error).stack)}\n`); process.exit(1) })
}
