import { randomBytes } from 'node:crypto'
import dgram from 'node:dgram'
import { once } from 'node:events'
import net from 'node:net'
import type { FastifyInstance } from 'fastify'
import IORedis from 'ioredis'
import type { Logger } from 'pino'
import { ClusterLocations } from '../../example/cluster/locations'
import { RedisBindings } from '../../example/cluster/redis-bindings'
import { CoreBridge } from '../../example/core/bridge'
import type { SipTimers } from '../../example/core/client-transactions'
import { FlowTokens } from '../../example/core/flow-token'
import { Outcomes } from '../../example/proxy/outcome'
import { ProxyVia } from '../../example/proxy/proxy-via'
import { Registrar } from '../../example/proxy/registrar'
import { SipProxy } from '../../example/proxy/sip-proxy'
import type { SipMessage, SipRequest } from '../../example/sip/message'
import { parseSip } from '../../example/sip/parse'
import { SipStreamReader } from '../../example/sip/stream'
import type { SipWsOptions } from '../../lib'
import { freePort } from './lwsc'
import { within } from './pool'
import { startSipApp, type SipApp } from './sip-app'

export interface AtCore { message: SipMessage, bytes: Buffer, transport: 'udp' | 'tcp' }

/**
 * A SIP core for the edge to talk to, made of bare sockets so a test sees and shapes every byte: a UDP
 * socket and a TCP listener on one port of 127.0.0.1 (or ::1). Each message it gets is queued, raw and
 * parsed; `ignore` drops the next n datagrams, as a lossy link would.
 */
export class RawCore {
  private readonly queue: AtCore[] = []
  private readonly waiters: Array<(m: AtCore) => void> = []
  private readonly sockets: net.Socket[] = []
  /** Datagrams received, ignored ones included. */
  received = 0
  private ignoring = 0

  private constructor (readonly host: string, readonly port: number, private readonly udp: dgram.Socket, private readonly tcp: net.Server) {
    udp.on('message', (data) => {
      this.received++
      if (this.ignoring > 0) {
        this.ignoring--
        return
      }
      this.push(data, 'udp')
    })
    tcp.on('connection', (socket) => {
      this.sockets.push(socket)
      const reader = new SipStreamReader()
      socket.on('data', (chunk: Buffer) => { for (const item of reader.push(chunk)) if (item.kind === 'message') this.push(item.data, 'tcp') })
    })
  }

  static async start (host = '127.0.0.1'): Promise<RawCore> {
    const port = await freePort('both')
    const udp = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4')
    udp.bind(port, host)
    await once(udp, 'listening')
    const tcp = net.createServer()
    tcp.listen(port, host)
    await once(tcp, 'listening')
    return new RawCore(host, port, udp, tcp)
  }

  /** `host:port`, the host in brackets when IPv6. */
  get address (): string {
    return `${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`
  }

  private push (bytes: Buffer, transport: 'udp' | 'tcp'): void {
    const item = { message: parseSip(bytes), bytes, transport }
    const waiter = this.waiters.shift()
    if (waiter !== undefined) waiter(item)
    else this.queue.push(item)
  }

  async next (ms = 3000): Promise<AtCore> {
    const queued = this.queue.shift()
    if (queued !== undefined) return queued
    return await within(new Promise((resolve) => { this.waiters.push(resolve) }), ms, () => 'a message at the core')
  }

  /** How many messages are queued, not yet taken with `next`. */
  get pending (): number {
    return this.queue.length
  }

  /** The next `count` datagrams are lost (0: none any more). */
  ignore (count: number): void {
    this.ignoring = count
  }

  /** Sends over UDP to the edge. */
  send (data: string | Buffer, port: number): void {
    this.udp.send(data, port, this.host)
  }

  /** A request as the core sends it to the edge: its own Via with rport, Route to the edge when given. */
  request (method: string, uri: string, options: { route?: string, branch?: string, headers?: Record<string, string>, body?: string } = {}): string {
    let text = `${method} ${uri} SIP/2.0\r\nVia: SIP/2.0/UDP ${this.address};branch=${options.branch ?? `z9hG4bK${randomBytes(6).toString('hex')}`};rport\r\n`
    if (options.route !== undefined) text += `Route: ${options.route}\r\n`
    text += `Max-Forwards: 70\r\nFrom: <sip:phone@core.example>;tag=p1\r\nTo: <${uri}>\r\nCall-ID: ${randomBytes(6).toString('hex')}\r\nCSeq: 1 ${method}\r\n`
    for (const [name, value] of Object.entries(options.headers ?? {})) text += `${name}: ${value}\r\n`
    const body = options.body ?? ''
    return `${text}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  }

  async close (): Promise<void> {
    for (const socket of this.sockets) socket.destroy()
    this.udp.close()
    await new Promise((resolve) => { this.tcp.close(resolve) })
  }
}

/** The response a core sends: the request's Vias, From, To, Call-ID, CSeq, and `extra`. */
export function coreAnswer (request: SipRequest, status: number, extra: Record<string, string> = {}, reason = 'Answer'): string {
  let text = `SIP/2.0 ${status} ${reason}\r\n`
  for (const via of request.getAll('via')) text += `Via: ${via}\r\n`
  for (const name of ['From', 'To', 'Call-ID', 'CSeq']) text += `${name}: ${request.get(name) ?? ''}\r\n`
  for (const [name, value] of Object.entries(extra)) text += `${name}: ${value}\r\n`
  return text + 'Content-Length: 0\r\n\r\n'
}

export type BridgeEdge = SipApp & { bridge: CoreBridge, proxy: SipProxy, registrar: Registrar, tokens: FlowTokens }

export interface BridgeEdgeOptions {
  /** T1 and T2 of the edge's retransmissions towards the core. */
  timers?: SipTimers
  /** The address the edge advertises to the core (SIP_ADVERTISE). */
  advertise?: { host: string, port: number }
  /** A Redis URL: the edge is a cluster node, its locations there. */
  redis?: string
  plugin?: SipWsOptions
}

/**
 * The example's proxy and bridge, wired as example/server.ts wires them, on a real server, in front of
 * `core`: for tests of the bridge's parts with real WebSocket clients.
 */
export async function bridgeEdge (core: RawCore, log: Logger, options: BridgeEdgeOptions = {}): Promise<BridgeEdge> {
  const tokenKey = randomBytes(32)
  let parts: { bridge: CoreBridge, proxy: SipProxy } | undefined
  const registrar = new Registrar()
  const redis = options.redis === undefined ? null : new IORedis(options.redis)
  const edge = await startSipApp(async (app: FastifyInstance, connections) => {
    const via = new ProxyVia(randomBytes(32))
    const outcomes = new Outcomes(log)
    const locations = redis === null ? null : new ClusterLocations(new RedisBindings(redis, 'sipws', app.wsCluster.instance), app.wsCluster, connections, log)
    const send = (id: number, data: string | Buffer): boolean => app.wsSend(id, data)
    const bridge = new CoreBridge({
      core: { transport: 'udp', host: core.host, port: core.port },
      listen: { transport: 'udp', host: core.host, port: 0 },
      via, tokenKey, registrar, connections, sendWs: send, log, serverName: 'bridge test', remote: locations, outcomes, timers: options.timers,
      advertise: options.advertise === undefined ? null : { transport: 'udp', ...options.advertise }
    })
    await bridge.start()
    app.addHook('onClose', async () => {
      await bridge.close()
      redis?.disconnect()
    })
    const proxy = new SipProxy({ send, log, registrar, via, connections, core: bridge, locations, outcomes, serverName: 'bridge test' })
    parts = { bridge, proxy }
    return proxy
  }, { ...options.plugin, ...(options.redis === undefined ? {} : { cluster: { redis: options.redis } }) })
  if (parts === undefined) throw new Error('the edge was not built')
  return { ...edge, ...parts, registrar, tokens: new FlowTokens(tokenKey) }
}
