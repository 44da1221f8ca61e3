import dgram from 'node:dgram'
import { once } from 'node:events'
import net from 'node:net'
import { freePort } from './lwsc'
import { Rng } from './random'

export interface LossyLink {
  /** The port the edge sends to, as its SIP core (UDP and TCP). */
  edgeFacing: number
  /** The port the core sends to, as the edge's address (the edge advertises it). */
  coreFacing: number
  /** UDP datagrams lost and passed, each way. */
  counts: { toCore: { lost: number, passed: number }, fromCore: { lost: number, passed: number } }
  close: () => Promise<void>
}

/**
 * A lossy network link between the edge and its core, on 127.0.0.1: UDP datagrams cross it both ways and
 * `lossRate` of them are lost, drawn from a generator seeded with `seed` (`seed + 1` the other way), so a
 * seed gives the same losses by the datagrams' order each way; TCP (the requests too big for UDP) goes
 * through untouched, as TCP recovers its own losses. The edge sends to `edgeFacing` as its SIP core and
 * advertises `coreFacing` as its address (SIP_ADVERTISE), so what the core sends it crosses the link too.
 */
export async function startLossyLink (core: { host: string, port: number }, edge: { host: string, port: number }, lossRate: number, seed: number): Promise<LossyLink> {
  // One generator a way, so which datagram of each way is lost does not hang on how the two interleave.
  const toCore = new Rng(seed)
  const fromCore = new Rng(seed + 1)
  const counts = { toCore: { lost: 0, passed: 0 }, fromCore: { lost: 0, passed: 0 } }
  const edgeSide = dgram.createSocket('udp4')
  const coreSide = dgram.createSocket('udp4')
  edgeSide.bind(await freePort('both'), '127.0.0.1')
  coreSide.bind(0, '127.0.0.1')
  await Promise.all([once(edgeSide, 'listening'), once(coreSide, 'listening')])
  // The core sees every datagram of the edge come from the core-facing side, and the edge every one of
  // the core's from the edge-facing side: as if the link's two ends were the peers themselves.
  edgeSide.on('message', (data) => {
    if (toCore.bool(lossRate)) counts.toCore.lost++
    else { counts.toCore.passed++; coreSide.send(data, core.port, core.host) }
  })
  coreSide.on('message', (data) => {
    if (fromCore.bool(lossRate)) counts.fromCore.lost++
    else { counts.fromCore.passed++; edgeSide.send(data, edge.port, edge.host) }
  })
  const sockets = new Set<net.Socket>()
  const tcp = net.createServer((fromEdge) => {
    const toCore = net.connect(core.port, core.host)
    for (const socket of [fromEdge, toCore]) {
      sockets.add(socket)
      socket.on('error', () => { fromEdge.destroy(); toCore.destroy() })
      socket.on('close', () => { sockets.delete(socket) })
    }
    fromEdge.pipe(toCore).pipe(fromEdge)
  })
  tcp.listen(edgeSide.address().port, '127.0.0.1')
  await once(tcp, 'listening')
  return {
    edgeFacing: edgeSide.address().port,
    coreFacing: coreSide.address().port,
    counts,
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => { tcp.close(resolve) })
      await Promise.all([edgeSide, coreSide].map(async (s) => { await new Promise<void>((resolve) => { s.close(() => { resolve() }) }) }))
    }
  }
}
