/**
 * Cluster bench: a send to a connection on another node through Redis, against the same send to a local
 * connection and against socket.io's `@socket.io/redis-adapter` (`io.to(socketId).emit()`) on the same
 * Redis, in one run. Three nodes of each kind, so a design that delivers every send to every node shows it.
 *
 *   npm run bench:cluster              the full run
 *   npm run bench:cluster -- --smoke   tiny numbers, to check every part works (test/bench-smoke)
 *
 * Every node, client and the Redis server is its own process; CPU is read from /proc for each.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import IORedis from 'ioredis'
import { startRedis, type RedisServer } from '../test/helpers/redis'
import { cpuSeconds } from './proc'
import { spread, type Spread } from './spread'

const SMOKE = process.argv.includes('--smoke')
const P = SMOKE
  ? { rounds: 1, seconds: 0.3, rate: 2000, floodSeconds: 0.3, size: 200 }
  : { rounds: 5, seconds: 3, rate: 20_000, floodSeconds: 3, size: 200 }
const out = (line = ''): void => { process.stdout.write(line + '\n') }

interface Proc { child: ChildProcess, pid: number, ask: <T>(m: object) => Promise<T> }

async function start (args: string[]): Promise<Proc & { first: any }> {
  const child = fork(join(__dirname, 'cluster-node.ts'), args, { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const [first] = await once(child, 'message')
  const ask = async <T>(m: object): Promise<T> => {
    child.send(m)
    return (await once(child, 'message'))[0] as T
  }
  return { child, pid: child.pid ?? 0, ask, first }
}

interface Report { received: number, seconds: number, p50: number, p99: number, max: number }
interface Row { name: string, rate: number[], p50: number[], p99: number[], delivered: number[], cpu: Record<string, number[]>, redisBytes: number[] }

async function redisOutputBytes (redis: IORedis): Promise<number> {
  const info = await redis.info('stats')
  return Number(/total_net_output_bytes:(\d+)/.exec(info)?.[1] ?? NaN)
}

/** One round of one path: the sender sends at `rate` (0: flood) for `seconds`; what arrived, how late, at what CPU. */
async function round (sender: Proc, target: number | string, receiver: Proc, nodes: Proc[], redisPid: number, info: IORedis, rate: number, seconds: number, row: Row): Promise<void> {
  await receiver.ask<Report>({ cmd: 'report' })
  const pids = { sender: [sender.pid], 'receiving node': nodes.map((n) => n.pid), redis: [redisPid], client: [receiver.pid] }
  const cpu0 = Object.fromEntries(Object.entries(pids).map(([k, v]) => [k, cpuSeconds(v)]))
  const bytes0 = await redisOutputBytes(info)
  const { sent } = await sender.ask<{ sent: number }>({ cmd: 'send', id: target, rate, seconds, size: P.size })
  // Let what is in flight arrive: bounded, and ended early once nothing more comes.
  let report: Report = await receiver.ask<Report>({ cmd: 'report' })
  let received = report.received
  for (let i = 0; i < 20 && received < sent; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    const more = await receiver.ask<Report>({ cmd: 'report' })
    if (more.received === 0) break
    received += more.received
    report = { ...report, p99: Math.max(report.p99, more.p99), received }
  }
  const bytes = (await redisOutputBytes(info)) - bytes0
  row.rate.push(received / seconds)
  row.p50.push(report.p50)
  row.p99.push(report.p99)
  row.delivered.push(received / sent)
  row.redisBytes.push(bytes / sent)
  for (const [k, v] of Object.entries(pids)) (row.cpu[k] ??= []).push((cpuSeconds(v) - cpu0[k]) / received * 1e6)
}

const f = (s: Spread, digits = 0): string => !Number.isFinite(s.median) ? 'n/a' : s.min === s.max ? s.median.toFixed(digits) : `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`

async function main (): Promise<void> {
  const started = Date.now()
  out(`# fastify-sip-ws cluster bench — ${new Date().toISOString()}, Node ${process.version}${SMOKE ? ', SMOKE (tiny numbers, not figures)' : ''}`)
  out()
  const redis: RedisServer = await startRedis()
  const info = new IORedis(redis.url)
  info.on('error', () => {})
  const procs: Proc[] = []
  const usedMemory = async (): Promise<number> => Number(/used_memory:(\d+)/.exec(await info.info('memory'))?.[1] ?? NaN)
  try {
    const memoryBefore = await usedMemory()
    const ours = await Promise.all([0, 1, 2].map(async () => await start(['ours', redis.url])))
    procs.push(...ours)
    // Every node of ours sees the other two before anything is measured.
    for (let i = 0; i < 200 && (await ours[0].ask<{ nodes: number }>({ cmd: 'nodes' })).nodes < 3; i++) await new Promise((resolve) => setTimeout(resolve, 50))
    const bytesPerNode = (await usedMemory() - memoryBefore) / 3
    // Heartbeats: what one looks like on the wire, measured on the control channel.
    const listener = new IORedis(redis.url)
    listener.on('error', () => {})
    await listener.subscribe('sipws:ctl')
    const [, beat] = await once(listener, 'message') as [string, string]
    listener.disconnect()
    const sio = await Promise.all([0, 1, 2].map(async () => await start(['sio', redis.url])))
    procs.push(...sio)
    const remoteClient = await start(['client', `ws://127.0.0.1:${ours[1].first.port as number}`, 'ws'])
    const localClient = await start(['client', `ws://127.0.0.1:${ours[0].first.port as number}`, 'ws'])
    const sioClient = await start(['client', `http://127.0.0.1:${sio[1].first.port as number}`, 'sio'])
    procs.push(remoteClient, localClient, sioClient)
    const remoteId = (await ours[1].ask<{ ids: number[] }>({ cmd: 'ids' })).ids[0]
    const localId = (await ours[0].ask<{ ids: number[] }>({ cmd: 'ids' })).ids[0]
    const socketId = (await sio[1].ask<{ ids: string[] }>({ cmd: 'ids' })).ids[0]
    const redisPid = redis.pid()

    const paths = [
      { name: 'local wsSend (same node)', sender: ours[0], target: localId, receiver: localClient, nodes: [ours[0]] },
      { name: 'cross-node wsSend through Redis', sender: ours[0], target: remoteId, receiver: remoteClient, nodes: [ours[1]] },
      { name: 'socket.io redis-adapter io.to(id).emit()', sender: sio[0], target: socketId, receiver: sioClient, nodes: [sio[1]] }
    ]
    const redisCpu: number[] = []
    // Warm-up: every path once, not recorded, so JIT and connection set-up are not in the first round.
    const scratch: Row = { name: '', rate: [], p50: [], p99: [], delivered: [], cpu: {}, redisBytes: [] }
    for (const p of paths) await round(p.sender, p.target, p.receiver, p.nodes, redisPid, info, P.rate, SMOKE ? 0.1 : 1, scratch)
    for (const [mode, rate, seconds] of [['paced', P.rate, P.seconds], ['flood', 0, P.floodSeconds]] as const) {
      const rows = paths.map((p) => ({ name: p.name, rate: [], p50: [], p99: [], delivered: [], cpu: {}, redisBytes: [] } as Row))
      for (let r = 0; r < P.rounds; r++) {
        // Rotated, so no path always goes first.
        for (let k = 0; k < paths.length; k++) {
          const i = (k + r) % paths.length
          const p = paths[i]
          await round(p.sender, p.target, p.receiver, p.nodes, redisPid, info, rate, seconds, rows[i])
        }
      }
      out(mode === 'paced'
        ? `### ${P.rate.toLocaleString('en-US')} messages/s of ${P.size} B to one connection, ${P.seconds} s × ${P.rounds} rounds (median, min–max)`
        : `### As fast as the sender goes, ${P.floodSeconds} s × ${P.rounds} rounds`)
      out()
      out('| path | received/s | delivered | p50 ms | p99 ms | µs CPU per message: sender | receiving node | Redis | client | Redis bytes out per send |')
      out('|---|---|---|---|---|---|---|---|---|---|')
      for (const row of rows) {
        out(`| ${row.name} | ${f(spread(row.rate))} | ${f(spread(row.delivered.map((d) => d * 100)), 1)}% | ${f(spread(row.p50), 3)} | ${f(spread(row.p99), 3)} | ${['sender', 'receiving node', 'redis', 'client'].map((k) => f(spread(row.cpu[k] ?? []), 1)).join(' | ')} | ${f(spread(row.redisBytes))} |`)
      }
      out()
      if (mode === 'paced') redisCpu.push(...(rows[1].cpu.redis ?? []))
      if (mode === 'flood') {
        const ratio = spread(rows[1].rate.map((v, i) => v / rows[2].rate[i]))
        out(`Cross-node over socket.io, messages/s: ${f(ratio, 2)} (goal ≥ 1.5: ${ratio.median >= 1.5 ? 'pass' : '**miss**'}).`)
      } else {
        const p99 = spread(rows[1].p99)
        out(`Cross-node p99 at ${P.rate.toLocaleString('en-US')}/s: ${f(p99, 3)} ms (goal ≤ 1 ms: ${p99.median <= 1 ? 'pass' : '**miss**'}).`)
      }
      out()
    }

    // From the measured costs: 1,000,000 connections over 20 nodes.
    const NODES = 20
    const beatsPerSecond = 1000 / (3000 / 4)
    const redisUsPerMessage = (cpu: number[]): number => spread(cpu).median
    out(`### Projection: 1,000,000 connections over ${NODES} nodes (from the figures above)`)
    out()
    out('| | figure | from |')
    out('|---|---|---|')
    out(`| Redis memory for the cluster | ${(bytesPerNode * NODES / 1024).toFixed(0)} KiB | ${bytesPerNode.toFixed(0)} B per node measured (its slot key, channels and two client connections); none per connection: an id names its node |`)
    out(`| heartbeat traffic | ${(NODES * beatsPerSecond).toFixed(0)} publishes/s, ${(NODES * NODES * beatsPerSecond).toFixed(0)} deliveries/s, ${(NODES * NODES * beatsPerSecond * (beat.length + 40) / 1024).toFixed(0)} KiB/s out of Redis | one heartbeat of ${beat.length} B per node every 750 ms, to every node |`)
    out(`| Redis CPU at 10,000 cross-node messages/s | ${(redisUsPerMessage(redisCpu) * 10_000 / 1e4).toFixed(1)}% of one core | ${redisUsPerMessage(redisCpu).toFixed(1)} µs of Redis CPU per cross-node message at ${P.rate.toLocaleString('en-US')}/s |`)
    out()

    // Deliveries per send, by Redis' own count: ours publish to the owning lease's channel, which one node
    // subscribes to; socket.io's adapter publishes to a channel every node's pattern subscription matches.
    const numsub = await info.pubsub('NUMSUB', `sipws:c:${Math.floor(remoteId / 2 ** 23)}`) as [string, number]
    const patternClients = (await info.client('LIST') as string).split('\n').filter((line) => /\bpsub=[1-9]/.test(line)).length
    out(`Redis deliveries per cross-node send, with 3 nodes each: ours ${numsub[1]} (subscribers of the owner's lease channel), socket.io's adapter ${patternClients} (every node's pattern subscription matches). Goal one however many nodes: ${numsub[1] === 1 ? 'pass' : '**miss**'}.`)
    out()

    // A crashed node: how long until another node stops counting it.
    const killedAt = performance.now()
    ours[2].child.kill('SIGKILL')
    let detected = NaN
    for (let i = 0; i < 400; i++) {
      if ((await ours[0].ask<{ nodes: number }>({ cmd: 'nodes' })).nodes === 2) { detected = performance.now() - killedAt; break }
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    out(`A SIGKILLed node is known gone after ${detected.toFixed(0)} ms (nodeTimeout 3000; goal ≤ 3000 ms: ${detected <= 3000 ? 'pass' : '**miss**'}).`)

    // Redis restarts: how long until a cross-node send gets through again.
    await remoteClient.ask<Report>({ cmd: 'report' })
    const sending = ours[0].ask<{ sent: number }>({ cmd: 'send', id: remoteId, rate: 1000, seconds: SMOKE ? 2 : 5, size: P.size })
    await new Promise((resolve) => setTimeout(resolve, 500))
    await redis.kill()
    await new Promise((resolve) => setTimeout(resolve, 500))
    await remoteClient.ask<Report>({ cmd: 'report' })
    await redis.restart()
    const back = performance.now()
    let recovered = NaN
    for (let i = 0; i < 400; i++) {
      if ((await remoteClient.ask<Report>({ cmd: 'report' })).received > 0) { recovered = performance.now() - back; break }
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    await sending
    out(`After Redis restarts, cross-node sends arrive again after ${recovered.toFixed(0)} ms (goal ≤ 2000 ms: ${recovered <= 2000 ? 'pass' : '**miss**'}).`)
    out()
    out(`Cluster bench took ${Math.round((Date.now() - started) / 1000)} s.`)
  } finally {
    info.disconnect()
    for (const p of procs) p.child.kill()
    await redis.stop()
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${String((err as Error).stack ?? err)}\n`)
  process.exitCode = 1
})
