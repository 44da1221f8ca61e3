import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import WebSocket, { WebSocketServer } from 'ws'

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

/** A port nothing listens on: bound, then released. */
export async function freePort (): Promise<number> {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
  return port
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
