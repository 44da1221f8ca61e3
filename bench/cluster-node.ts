/**
 * One process of the cluster bench (bench/cluster.ts), forked with a role:
 *
 *   ours <redisUrl>   this plugin in cluster mode: a node that holds connections and sends to any id
 *   sio <redisUrl>    socket.io with @socket.io/redis-adapter on the same Redis: the anchor
 *   client <url> <kind>  a receiving client (kind `ws` or `sio`) that reports what arrived and how late
 *
 * Every process answers `{ cmd, ... }` over IPC; the sender paces its sends itself so no IPC is on the path.
 * Each message carries the time it was sent (performance.timeOrigin + performance.now(): one clock for
 * every process of this machine), so the receiving client measures one-way latency.
 */
import Fastify from 'fastify'
import type { AddressInfo } from 'node:net'
import { createServer } from 'node:http'
import IORedis from 'ioredis'
import { Server as SocketIoServer } from 'socket.io'
import { createAdapter } from '@socket.io/redis-adapter'
import { io as socketIoClient } from 'socket.io-client'
import WebSocket from 'ws'
import sipWs from '../lib'

const now = (): number => performance.timeOrigin + performance.now()
const reply = (m: unknown): void => { process.send?.(m) }

/** Sends `rate` messages a second for `seconds` (0 rate: as fast as the loop goes), padded to `size` bytes. */
async function paced (send: (payload: string) => void, rate: number, seconds: number, size: number): Promise<number> {
  const pad = 'x'.repeat(Math.max(0, size - 20))
  const started = performance.now()
  let sent = 0
  while (performance.now() - started < seconds * 1000) {
    const due = rate === 0 ? sent + 200 : Math.floor(rate * (performance.now() - started) / 1000)
    for (; sent < due; sent++) send(`${now().toFixed(3)} ${pad}`)
    // Paced: sleep to the next millisecond rather than spin, so the sender leaves the CPU to the rest of
    // the path it is measuring; flooding: just let I/O run between batches.
    if (rate === 0) await new Promise((resolve) => setImmediate(resolve))
    else await new Promise((resolve) => setTimeout(resolve, 1))
  }
  return sent
}

async function ours (redis: string): Promise<void> {
  const app = Fastify({ logger: false })
  await app.register(sipWs, { keepaliveMechanism: 0, cluster: { redis } })
  await app.listen({ host: '127.0.0.1', port: 0 })
  reply({ port: (app.server.address() as AddressInfo).port, instance: app.wsCluster.instance })
  process.on('message', (m: { cmd: string, id?: number, rate?: number, seconds?: number, size?: number }) => {
    if (m.cmd === 'nodes') reply({ nodes: app.wsCluster.nodes().length })
    if (m.cmd === 'ids') reply({ ids: app.wsDump().connections.map((c) => c.id) })
    if (m.cmd === 'send') {
      const id = m.id as number
      void paced((payload) => { app.wsSend(id, payload) }, m.rate ?? 0, m.seconds ?? 1, m.size ?? 200).then((sent) => { reply({ sent }) })
    }
  })
}

async function sio (redis: string): Promise<void> {
  const pub = new IORedis(redis)
  const sub = pub.duplicate()
  // The bench restarts Redis: reconnects are expected, not news.
  for (const client of [pub, sub]) client.on('error', () => {})
  const server = createServer()
  const io = new SocketIoServer(server, { adapter: createAdapter(pub, sub), transports: ['websocket'] })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  const sockets: string[] = []
  io.on('connection', (socket) => { sockets.push(socket.id) })
  reply({ port: (server.address() as AddressInfo).port })
  process.on('message', (m: { cmd: string, id?: string, rate?: number, seconds?: number, size?: number }) => {
    if (m.cmd === 'ids') reply({ ids: sockets })
    if (m.cmd === 'send') {
      const target = io.to(m.id as string)
      void paced((payload) => { target.emit('m', payload) }, m.rate ?? 0, m.seconds ?? 1, m.size ?? 200).then((sent) => { reply({ sent }) })
    }
  })
}

/** Receives, and on `{ cmd: 'report' }` says how many arrived since the last report and how late. */
async function client (url: string, kind: string): Promise<void> {
  let latencies: number[] = []
  let first = 0
  let last = 0
  const arrived = (payload: string): void => {
    const t = now()
    if (latencies.length === 0) first = t
    last = t
    latencies.push(t - Number(payload.slice(0, payload.indexOf(' '))))
  }
  if (kind === 'ws') {
    const ws = new WebSocket(url, 'sip')
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
    ws.on('message', (data: Buffer) => { arrived(data.toString()) })
  } else {
    const socket = socketIoClient(url, { transports: ['websocket'] })
    await new Promise<void>((resolve) => { socket.once('connect', resolve) })
    socket.on('m', arrived)
  }
  reply({ ready: true })
  process.on('message', (m: { cmd: string }) => {
    if (m.cmd !== 'report') return
    const sorted = latencies.sort((a, b) => a - b)
    const at = (q: number): number => sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
    reply({ received: sorted.length, seconds: (last - first) / 1000, p50: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? NaN })
    latencies = []
  })
}

if (require.main === module) {
  process.setSourceMapsEnabled(false)
  const [role, a, b] = process.argv.slice(2)
  const run = role === 'ours' ? ours(a) : role === 'sio' ? sio(a) : client(a, b)
  run.catch((err: unknown) => { process.stderr.write(`${String((err as Error).stack ?? err)}\n`); process.exit(1) })
  process.on('disconnect', () => { process.exit(0) })
}
