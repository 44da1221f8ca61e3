import type { FastifyBaseLogger } from 'fastify'
import type { IncomingMessage } from 'node:http'
import type { Server, Socket } from 'node:net'
import { Server as TlsServer, type TLSSocket } from 'node:tls'

// What Node's own headersTimeout sends before it drops a socket, so a real (if slow) client learns why.
const REQUEST_TIMEOUT = 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'

/**
 * Drops a TCP connection that has not completed its first HTTP request head within `timeoutMs`. Without it a
 * slowloris client (a handshake sent a byte at a time) holds a socket and a file descriptor until Node's
 * `headersTimeout`: 60 s, checked only every 30 s. Later requests on a kept-alive socket are left to that
 * `headersTimeout`: a connection is timed from its accept to its first request head, once.
 *
 * With `timeoutMs` 0 connections are only tracked, not timed, until shutdown: `server.close()` waits for a
 * connection that never sent a request (Node closes only idle keep-alive ones), so shutdown must drop them.
 *
 * On an HTTP/2 server that takes HTTP/1.1 too (`allowHTTP1`), only the HTTP/1.1 connections are timed.
 *
 * Only `'request'` and `'upgrade'` are listened to, never `'connect'` or `'checkContinue'`: Node changes how
 * it treats those requests as soon as a listener exists. A connection the server has written to already (a
 * CONNECT tunnel's or a 100-continue handler's answer) completed its request head, so expiry spares it.
 */
export class HandshakeTimeout {
  private readonly pending = new Map<Socket, NodeJS.Timeout | null>()
  // On an https server requests arrive on the TLSSocket, which exists from 'secureConnection' on; the TLS
  // handshake before it is bounded by the https options' own `handshakeTimeout`.
  private readonly acceptEvent: 'connection' | 'secureConnection'
  private listensUpgrade = false
  /** At shutdown, how long a newly accepted connection may take to send its request head. */
  private closingTimeoutMs = 0

  constructor (
    private readonly server: Server,
    private readonly timeoutMs: number,
    private readonly log: FastifyBaseLogger,
    private readonly onTimeout: (remoteAddress: string, waitedMs: number) => void
  ) {
    this.acceptEvent = server instanceof TlsServer ? 'secureConnection' : 'connection'
  }

  /** Times connections accepted from now on; those already open are not touched. */
  start (): void {
    this.server.on(this.acceptEvent, this.arm)
    this.server.on('request', this.onRequestHead)
    // A first 'upgrade' listener would make Node hand over upgrade requests it otherwise drops.
    if (this.server.listenerCount('upgrade') > 0) {
      this.server.on('upgrade', this.onRequestHead)
      this.listensUpgrade = true
    }
  }

  stop (): void {
    this.server.off(this.acceptEvent, this.arm)
    this.server.off('request', this.onRequestHead)
    if (this.listensUpgrade) this.server.off('upgrade', this.onRequestHead)
    this.listensUpgrade = false
    for (const socket of [...this.pending.keys()]) this.disarm(socket)
  }

  /** The listener this owns on 'upgrade', which does not answer upgrade requests. */
  get upgradeListener (): (req: IncomingMessage) => void {
    return this.onRequestHead
  }

  /**
   * At shutdown: a connection still without a request head would hold `server.close()`, which waits for it.
   * Each one, and each accepted until the listener closes, gets `graceMs` (or less) to send its request,
   * which is then answered 503, and is dropped after that. A real client sends its request with the end of
   * the TCP handshake, so a short grace loses none and bounds the rest.
   */
  closing (graceMs: number): void {
    this.closingTimeoutMs = this.timeoutMs === 0 ? graceMs : Math.min(graceMs, this.timeoutMs)
    for (const [socket, timer] of this.pending) {
      if (timer !== null) clearTimeout(timer)
      this.pending.set(socket, setTimeout(this.expire, this.closingTimeoutMs, socket).unref())
    }
  }

  private readonly arm = (socket: Socket): void => {
    // An HTTP/2 session (an HTTP/2 server that takes HTTP/1.1 too) never upgrades: http2's own timeouts are its.
    if ((socket as TLSSocket).alpnProtocol === 'h2') return
    const ms = this.closingTimeoutMs !== 0 ? this.closingTimeoutMs : this.timeoutMs
    this.pending.set(socket, ms === 0 ? null : setTimeout(this.expire, ms, socket).unref())
    socket.once('close', this.onSocketClose)
  }

  private disarm (socket: Socket): void {
    const timer = this.pending.get(socket)
    if (timer === undefined) return
    if (timer !== null) clearTimeout(timer)
    this.pending.delete(socket)
    socket.off('close', this.onSocketClose)
  }

  private readonly onRequestHead = (req: IncomingMessage): void => {
    if (this.pending.size !== 0) this.disarm(req.socket)
  }

  // Listeners run with `this` bound to the socket; one shared function, so a connection costs no closure.
  private readonly onSocketClose = ((self: HandshakeTimeout) => function (this: Socket): void {
    self.disarm(this)
  })(this)

  private readonly expire = (socket: Socket): void => {
    this.pending.delete(socket)
    socket.off('close', this.onSocketClose)
    if (socket.destroyed || socket.bytesWritten > 0) return
    const handshakeTimeout = this.closingTimeoutMs !== 0 ? this.closingTimeoutMs : this.timeoutMs
    this.log.info({ remoteAddress: socket.remoteAddress, remotePort: socket.remotePort, handshakeTimeout }, 'fastify-sip-ws: no complete request head within handshakeTimeout, dropping the connection')
    if (socket.writable) socket.write(REQUEST_TIMEOUT)
    socket.destroy()
    this.onTimeout(socket.remoteAddress ?? '', handshakeTimeout)
  }
}
