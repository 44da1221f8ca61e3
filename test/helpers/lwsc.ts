import { execFile } from 'node:child_process'
import dgram from 'node:dgram'
import { once } from 'node:events'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import WebSocket, { WebSocketServer } from 'ws'
import type { LwscContext } from '../../lib/lwsc/context'
import { silentLogger, type LwscLogger } from '../../lib/lwsc/logger'
import { newCounters } from '../../lib/lwsc/stats'
import { resolveLwscOptions, type LwscOptions } from '../../lib/options'

export interface SeenHandshake {
  host: string | undefined
  origin: string | undefined
  protocol: string | undefined
  headers: http.IncomingHttpHeaders
}

export interface PeerServer {
  url: string
  port: number
  wss: WebSocketServer
  handshakes: SeenHandshake[]
  /** Server-side sockets, open or not. */
  sockets: WebSocket[]
  open: number
  maxOpen: number
  /** Resolves once every socket accepted so far has closed. */
  allClosed: () => Promise<void>
  close: () => Promise<void>
}

export interface PeerOptions {
  onMessage?: (ws: WebSocket, data: Buffer, isBinary: boolean) => void
  handleProtocols?: (protocols: Set<string>) => string | false
  autoPong?: boolean
  /** TLS key and cert: serves wss://. */
  tls?: { key: string, cert: string }
}

/** A ws server on 127.0.0.1 and a free port; by default it echoes each message in the frame type it came in. */
export async function startPeer (options: PeerOptions = {}): Promise<PeerServer> {
  const server = options.tls !== undefined ? https.createServer(options.tls) : http.createServer()
  const wss = new WebSocketServer({
    server,
    autoPong: options.autoPong ?? true,
    handleProtocols: options.handleProtocols ?? ((protocols) => protocols.values().next().value ?? false)
  })
  const peer: PeerServer = {
    url: '',
    port: 0,
    wss,
    handshakes: [],
    sockets: [],
    open: 0,
    maxOpen: 0,
    allClosed: async () => {
      await Promise.all(peer.sockets.map(async (ws) => {
        if (ws.readyState !== WebSocket.CLOSED) await once(ws, 'close')
      }))
    },
    close: async () => {
      for (const ws of peer.sockets) ws.terminate()
      await peer.allClosed()
      await new Promise<void>((resolve) => { wss.close(() => { resolve() }) })
      server.closeAllConnections()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
  const onMessage = options.onMessage ?? ((ws, data, isBinary) => { ws.send(isBinary ? data : data.toString()) })
  wss.on('connection', (ws, req) => {
    peer.sockets.push(ws)
    peer.handshakes.push({ host: req.headers.host, origin: req.headers.origin, protocol: ws.protocol, headers: req.headers })
    peer.open++
    peer.maxOpen = Math.max(peer.maxOpen, peer.open)
    ws.on('close', () => { peer.open-- })
    ws.on('error', () => {})
    ws.on('message', (data, isBinary) => { onMessage(ws, data as Buffer, isBinary) })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  peer.port = (server.address() as net.AddressInfo).port
  peer.url = `${options.tls !== undefined ? 'wss' : 'ws'}://127.0.0.1:${peer.port}/`
  return peer
}

/**
 * A port on 127.0.0.1 that nothing holds now, for TCP (the default), UDP, or both: picked by the kernel,
 * then released. A TCP-free port may still be held for UDP (WebRTC's ICE sockets in this process, a SIP
 * peer), so whatever binds UDP asks for 'udp' or 'both'.
 */
export async function freePort (kind: 'tcp' | 'udp' | 'both' = 'tcp'): Promise<number> {
  if (kind === 'tcp') return await tcpPort(0)
  // Bounded: the kernel's UDP pick is also free for TCP nearly always.
  for (let i = 0; i < 20; i++) {
    const socket = dgram.createSocket('udp4')
    socket.bind(0, '127.0.0.1')
    await once(socket, 'listening')
    const { port } = socket.address()
    try {
      if (kind === 'udp' || await tcpPort(port).then(() => true, () => false)) return port
    } finally {
      await new Promise<void>((resolve) => { socket.close(() => { resolve() }) })
    }
  }
  throw new Error('no port free for both UDP and TCP on 127.0.0.1 in 20 tries')
}

/** Binds TCP `port` (0: any) on 127.0.0.1 and releases it; resolves with the port, rejects when it is taken. */
async function tcpPort (port: number): Promise<number> {
  const server = net.createServer()
  server.listen({ port, host: '127.0.0.1', exclusive: true })
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => { throw err })])
  const bound = (server.address() as net.AddressInfo).port
  await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
  return bound
}

/** Accepts TCP connections and never answers: an opening handshake that hangs. */
export async function startSilentTcp (): Promise<{ url: string, accepted: () => number, close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>()
  let accepted = 0
  const server = net.createServer((socket) => {
    accepted++
    sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  return {
    url: `ws://127.0.0.1:${port}/`,
    accepted: () => accepted,
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
}

/** Answers every request with a fixed raw HTTP response: for refused handshakes. */
export async function startHttpRefuser (status: number, headers: Record<string, string> = {}): Promise<{ url: string, close: () => Promise<void> }> {
  const server = http.createServer((_req, res) => {
    res.writeHead(status, { ...headers, connection: 'close' })
    res.end()
  })
  // The ws client asks for an upgrade; answering it with a plain response is the refusal under test.
  server.on('upgrade', (_req, socket: net.Socket) => {
    const lines = [`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}`, 'Connection: close', 'Content-Length: 0']
    for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`)
    socket.end(lines.join('\r\n') + '\r\n\r\n')
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  return {
    url: `ws://127.0.0.1:${port}/`,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
}

/** A self-signed key and certificate for 127.0.0.1, made with the openssl CLI in a temp dir. */
export async function selfSignedCert (): Promise<{ key: string, cert: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'lwsc-tls-'))
  try {
    await promisify(execFile)('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'
    ], { timeout: 30000 })
    return { key: await readFile(join(dir, 'key.pem'), 'utf8'), cert: await readFile(join(dir, 'cert.pem'), 'utf8') }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

export interface LogLine { level: string, obj: object, msg?: string }

/** A logger that records every call. */
export function recordingLogger (): { lines: LogLine[], debug: (obj: object, msg?: string) => void, info: (obj: object, msg?: string) => void, warn: (obj: object, msg?: string) => void, error: (obj: object, msg?: string) => void } {
  const lines: LogLine[] = []
  const at = (level: string) => (obj: object, msg?: string) => { lines.push({ level, obj, msg }) }
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

/** Collects unhandled rejections from now until `stop()`, which returns them. */
export function watchUnhandledRejections (): { stop: () => unknown[] } {
  const seen: unknown[] = []
  const onUnhandled = (reason: unknown): void => { seen.push(reason) }
  process.on('unhandledRejection', onUnhandled)
  return {
    stop: () => {
      process.off('unhandledRejection', onUnhandled)
      return seen
    }
  }
}

/**
 * What an LwscClient shares with its endpoints and connections, built as the client builds it, for tests of
 * those parts without a client: keepalive and idle closing off unless `options` turn them on.
 */
export function lwscContext (options: LwscOptions = {}, log: LwscLogger = silentLogger): LwscContext {
  const resolved = resolveLwscOptions({ keepaliveInterval: 0, idleTimeout: 0, ...options })
  const wsOptions = { perMessageDeflate: false, allowSynchronousEvents: true, closeTimeout: resolved.timeoutRead }
  return { options: resolved, log, counters: newCounters(), wsOptions, discarded: new Set(), closed: false }
}
