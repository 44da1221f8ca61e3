import dgram from 'node:dgram'
import { once } from 'node:events'
import net from 'node:net'
import type { FastifyBaseLogger } from 'fastify'
import type { SipAddress, SipPeer } from '../sip/address'
import { SipStreamReader } from '../sip/stream'

export interface CoreTransportOptions {
  /** The edge's SIP address; port 0 picks a free one (the same for UDP and TCP). */
  listen: SipAddress
  log: FastifyBaseLogger
  onMessage: (data: Buffer, source: SipPeer) => void
}

/** Tries at finding a port free for both UDP and TCP when the listen port is 0. */
const BIND_TRIES = 10

/**
 * The edge's SIP sockets towards the core, node:dgram and node:net used directly: one UDP socket and one
 * TCP listener on the same address and port (RFC 3261 §18: every element does both; TCP is where a large
 * request goes, and where the core may answer or call us), and the TCP connections, found by the remote
 * address and port, so a response goes back on the connection its request came on (§18.2.2).
 */
export class CoreTransport {
  private udp: dgram.Socket | null = null
  private server: net.Server | null = null
  private readonly connections = new Map<string, net.Socket>()
  private address: SipAddress

  constructor (private readonly options: CoreTransportOptions) {
    this.address = { ...options.listen }
  }

  /** The address bound, with the port the system picked when it was 0. */
  get local (): SipAddress {
    return this.address
  }

  async start (): Promise<void> {
    const { host, port } = this.options.listen
    for (let attempt = 1; ; attempt++) {
      const udp = dgram.createSocket({ type: net.isIPv6(host) ? 'udp6' : 'udp4' })
      const server = net.createServer((socket) => { this.adopt(socket) })
      try {
        // Exclusive: under WORKERS each worker binds its own port, not a handle shared through the primary.
        udp.bind({ port, address: host, exclusive: true })
        await once(udp, 'listening')
        server.listen({ port: udp.address().port, host, exclusive: true })
        await once(server, 'listening')
      } catch (err) {
        udp.close()
        server.close()
        if (port !== 0 || attempt === BIND_TRIES || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err
        continue
      }
      udp.on('message', (data, info) => { this.options.onMessage(data, { transport: 'udp', address: info.address, port: info.port }) })
      udp.on('error', (err) => { this.options.log.warn({ err }, 'sip core: UDP socket error') })
      server.on('error', (err) => { this.options.log.warn({ err }, 'sip core: TCP listener error') })
      this.udp = udp
      this.server = server
      this.address = { ...this.options.listen, port: udp.address().port }
      return
    }
  }

  /**
   * Sends one message. Over TCP it goes on an open connection to `host:port` (one we opened or one the
   * peer opened), else on a new one. Errors are logged, never thrown: a stateless proxy loses the message
   * as UDP would, and the transaction layers at the ends time out.
   */
  send (data: Buffer, target: SipPeer): void {
    if (target.transport === 'udp') {
      this.udp?.send(data, target.port, target.address, (err) => {
        if (err !== null && err !== undefined) this.options.log.warn({ err, to: target }, 'sip core: UDP send failed')
      })
      return
    }
    let socket = this.connections.get(key(target.address, target.port))
    if (socket === undefined) {
      socket = net.connect({ host: target.address, port: target.port })
      this.adopt(socket, target)
    }
    socket.write(data)
  }

  async close (): Promise<void> {
    for (const socket of this.connections.values()) socket.destroy()
    this.connections.clear()
    const closing: Array<Promise<unknown>> = []
    if (this.server !== null) {
      const server = this.server
      closing.push(new Promise((resolve) => { server.close(resolve) }))
    }
    if (this.udp !== null) {
      const udp = this.udp
      closing.push(new Promise<void>((resolve) => { udp.close(() => { resolve() }) }))
    }
    this.server = null
    this.udp = null
    await Promise.all(closing)
  }

  private adopt (socket: net.Socket, target?: SipPeer): void {
    const peer: SipPeer = target ?? { transport: 'tcp', address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 }
    const id = key(peer.address, peer.port)
    this.connections.set(id, socket)
    const reader = new SipStreamReader()
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => {
      for (const item of reader.push(chunk)) {
        if (item.kind === 'message') {
          this.options.onMessage(item.data, peer)
        } else if (item.kind === 'ping') {
          socket.write('\r\n')
        } else {
          this.options.log.info({ from: peer, problem: item.problem }, 'sip core: TCP stream broken, connection closed')
          socket.destroy()
          return
        }
      }
    })
    socket.on('error', (err) => { this.options.log.info({ err, peer }, 'sip core: TCP connection error') })
    socket.on('close', () => {
      if (this.connections.get(id) === socket) this.connections.delete(id)
    })
  }
}

function key (address: string, port: number): string {
  return `${address}|${port}`
}
