/**
 * lwsc throughput on 127.0.0.1: requests/s over one reused connection, over a new connection per request
 * (what a client without an endpoint cache pays), and over a pool of 4 with 64 requests outstanding.
 * The echo server runs in a worker thread so it does not share the client's event loop.
 *
 *   npx tsx bench/lwsc.ts [--seconds 2]
 *
 * Every phase stops after `--seconds` or a fixed count, whichever comes first.
 */
import { once } from 'node:events'
import { Worker } from 'node:worker_threads'
import WebSocket from 'ws'
import { LwscClient } from '../lib/lwsc'

const secondsArg = process.argv.indexOf('--seconds')
const SECONDS = secondsArg !== -1 ? Number(process.argv[secondsArg + 1]) : 2
const MAX_REQUESTS = 500_000
const MAX_NEW_CONNECTIONS = 50_000
const PAYLOAD = 'OPTIONS sip:bench@127.0.0.1 SIP/2.0\r\nCall-ID: bench\r\nContent-Length: 0\r\n\r\n'

const SERVER = `
const { parentPort, workerData } = require('node:worker_threads')
const { WebSocketServer } = require(workerData.ws)
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, handleProtocols: (p) => p.values().next().value })
wss.on('connection', (ws) => { ws.on('message', (data, isBinary) => { ws.send(data, { binary: isBinary }) }) })
wss.on('listening', () => { parentPort.postMessage(wss.address().port) })
parentPort.on('message', () => { for (const ws of wss.clients) ws.terminate(); wss.close(() => process.exit(0)) })
`

interface Result { name: string, requests: number, seconds: number, perSecond: number }

async function timed (name: string, limit: number, body: (deadline: number) => Promise<number>): Promise<Result> {
  const started = process.hrtime.bigint()
  const deadline = Date.now() + SECONDS * 1000
  const requests = await body(deadline)
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  if (requests > limit) throw new Error(`${name}: ran past its bound`)
  return { name, requests, seconds: Math.round(seconds * 1000) / 1000, perSecond: Math.round(requests / seconds) }
}

async function main (): Promise<void> {
  const worker = new Worker(SERVER, { eval: true, workerData: { ws: require.resolve('ws') } })
  const [port] = await once(worker, 'message') as [number]
  const url = `ws://127.0.0.1:${port}/`
  const results: Result[] = []

  const reused = new LwscClient({ poolSize: 1, keepaliveInterval: 0 })
  await reused.request(url, 'warm-up')
  results.push(await timed('reused connection (sequential)', MAX_REQUESTS, async (deadline) => {
    let n = 0
    while (n < MAX_REQUESTS && (n % 64 !== 0 || Date.now() < deadline)) {
      await reused.request(url, PAYLOAD)
      n++
    }
    return n
  }))
  await reused.close()

  results.push(await timed('new connection per request (sequential)', MAX_NEW_CONNECTIONS, async (deadline) => {
    let n = 0
    while (n < MAX_NEW_CONNECTIONS && Date.now() < deadline) {
      const ws = new WebSocket(url, 'kmsg', { perMessageDeflate: false })
      await once(ws, 'open')
      ws.send(PAYLOAD)
      await once(ws, 'message')
      ws.close()
      await once(ws, 'close')
      n++
    }
    return n
  }))

  const pooled = new LwscClient({ poolSize: 4, keepaliveInterval: 0 })
  await Promise.all([1, 2, 3, 4].map(async () => await pooled.request(url, 'warm-up')))
  results.push(await timed('pool of 4, 64 outstanding', MAX_REQUESTS, async (deadline) => {
    let n = 0
    const lane = async (): Promise<void> => {
      while (n < MAX_REQUESTS && (n % 64 !== 0 || Date.now() < deadline)) {
        n++
        await pooled.request(url, PAYLOAD)
      }
    }
    await Promise.all(Array.from({ length: 64 }, lane))
    return n
  }))
  await pooled.close()

  worker.postMessage('stop')
  await once(worker, 'exit')

  const ratio = results[0].perSecond / Math.max(1, results[1].perSecond)
  for (const r of results) process.stdout.write(`${r.name.padEnd(42)} ${String(r.perSecond).padStart(8)} req/s  (${r.requests} in ${r.seconds} s)\n`)
  process.stdout.write(`reused / new-per-request: ${ratio.toFixed(1)}x\n`)
  process.stdout.write(JSON.stringify({ node: process.version, results, ratio: Math.round(ratio * 10) / 10 }) + '\n')
}

main().catch((err: unknown) => {
  process.stderr.write(String((err as Error).stack ?? err) + '\n')
  process.exitCode = 1
})
