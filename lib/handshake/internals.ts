import { EventEmitter } from 'node:events'
import { ServerResponse, type IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import { Duplex, PassThrough } from 'node:stream'
import { setTimeout as delay } from 'node:timers/promises'
import { WebSocket, WebSocketServer, type ServerOptions } from 'ws'
import { CLOSE_NORMAL, FRAME_ERROR_CLOSE_CODES } from '../constants'
import { MissingInternalError } from '../errors'

/**
 * Everything this package takes from its dependencies beyond their documented API, in one place. Each is
 * run once per process at `register` (`checkInternals`): a version without it fails `register` with
 * FST_SIPWS_MISSING_INTERNAL naming it, never a connection later. package.json pins ws to one exact
 * version for the same reason: a patch release may change what is private (8.23.1 changed even a public
 * behaviour, the handshake's version compare). @fastify/websocket gets a `^` range: what the plugin uses of
 * it is documented (upgrades routed through Fastify's hooks, `request.ws`, `injectWS`), and an injected
 * request's shape is made a real one's (injected.ts) rather than relied on.
 *
 * - ws: a WebSocket's frame parser (`ws._receiver`) and its `'conclude'` and `'error'` events. Kamailio
 *   answers a normal or empty Close with 1000 "Normal closure" and puts a reason text in the Close it sends
 *   for a bad frame; ws echoes the peer's code, and sends a bare code, from inside those events, with no
 *   option to change it. A listener put in front of ws's own sends ours first.
 * - Node: `ServerResponse#detachSocket()`, which Node's docs leave out (@types/node declares it).
 *   @fastify/websocket assigns a ServerResponse to every upgraded socket to route the request through
 *   Fastify; assigned, it keeps the request, the reply and their headers alive as long as the connection.
 *
 * What used to be reached here and now has a public way: the bytes after an upgrade request (Node's
 * `'upgrade'` event, see upgrade.ts, rather than @fastify/websocket's `ws-head` symbol), a frame error's
 * close code (ws's documented `err.code`, mapped in constants.ts, rather than its `status-code` symbol), and
 * whether a response still holds its socket (`res.socket` rather than `socket._httpMessage`).
 */

/** ws's frame parser of a WebSocket that came from `handleUpgrade`. */
export function frameParser (ws: WebSocket): EventEmitter {
  return (ws as unknown as { _receiver: EventEmitter })._receiver
}

/** Lets the upgrade's ServerResponse go, if it still holds the socket. */
export function releaseResponse (res: ServerResponse, socket: Socket): void {
  if (res.socket === socket) res.detachSocket(socket)
}

export interface Dependencies {
  WebSocketServer: new (options: ServerOptions) => WebSocketServer
  ServerResponse: new (req: IncomingMessage) => ServerResponse
}

const DEFAULTS: Dependencies = { WebSocketServer, ServerResponse }
let checked: Promise<void> | null = null

/**
 * Runs each internal the way the server uses it and throws MissingInternalError naming the first that
 * does not behave. The real dependencies are checked once per process; `deps` replaces them in tests.
 */
export async function checkInternals (deps: Dependencies = DEFAULTS): Promise<void> {
  if (deps !== DEFAULTS) return await runChecks(deps)
  checked ??= runChecks(deps)
  await checked
}

async function runChecks (deps: Dependencies): Promise<void> {
  checkDetachSocket(deps.ServerResponse)
  await checkFrameParser(deps.WebSocketServer)
}

// No network: a request object and an in-memory stream are all ws and Node need, as with injectWS.
const PROBE_REQUEST = {
  method: 'GET',
  url: '/',
  httpVersion: '1.1',
  httpVersionMajor: 1,
  httpVersionMinor: 1,
  headers: { host: 'probe', upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' }
} as unknown as IncomingMessage
// The longest a probe waits for ws to parse a few bytes it was handed in memory.
const PROBE_WAIT_MS = 2000

function checkDetachSocket (Response: Dependencies['ServerResponse']): void {
  const internal = 'ServerResponse#detachSocket()'
  const res = new Response(PROBE_REQUEST)
  if (typeof res.detachSocket !== 'function') throw new MissingInternalError(internal, `Node.js ${process.version}`, 'no such method')
  const socket = new Duplex({ read () {}, write (_chunk, _encoding, callback) { callback() } }) as unknown as Socket
  res.assignSocket(socket)
  releaseResponse(res, socket)
  if (res.socket !== null) throw new MissingInternalError(internal, `Node.js ${process.version}`, 'the response still holds the socket after it')
}

async function checkFrameParser (Server: Dependencies['WebSocketServer']): Promise<void> {
  const wss = new Server({ noServer: true, clientTracking: false })
  try {
    // A masked Close 1000: ws must tell the parser's listeners before it answers.
    const concluded = await probeParser(wss, 'conclude', Buffer.from([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]))
    if (concluded.value !== CLOSE_NORMAL) throw missingParser(`its 'conclude' event gave ${String(concluded.value)} for a Close 1000`)
    // An unmasked frame from a client: a protocol error with one of ws's documented codes.
    const failed = await probeParser(wss, 'error', Buffer.from([0x81, 0x00]))
    const code = (failed.value as { code?: unknown }).code
    if (typeof code !== 'string' || !(code in FRAME_ERROR_CLOSE_CODES)) throw missingParser(`its 'error' event carried code ${String(code)}, not one of ws's documented codes`)
  } finally {
    wss.close()
  }
}

function missingParser (why: string): Error {
  return new MissingInternalError("ws's frame parser (WebSocket#_receiver) and its 'conclude' and 'error' events", 'ws', why)
}

/**
 * Upgrades an in-memory socket, puts a listener for `event` in front of ws's own on the frame parser, feeds
 * it `frame` and resolves with the listener's first argument. It must run before ws has answered: while
 * the WebSocket is still OPEN.
 */
async function probeParser (wss: WebSocketServer, event: 'conclude' | 'error', frame: Buffer): Promise<{ value: unknown }> {
  const toServer = new PassThrough()
  const toClient = new PassThrough()
  toClient.resume()
  const socket = Duplex.from({ readable: toServer, writable: toClient })
  socket.on('error', () => {})
  let ws: WebSocket | null = null
  try {
    ws = await new Promise<WebSocket>((resolve) => { wss.handleUpgrade(PROBE_REQUEST, socket, Buffer.alloc(0), resolve) })
    ws.on('error', () => {})
    const parser = frameParser(ws)
    if (!(parser instanceof EventEmitter)) throw missingParser('an upgraded WebSocket has no _receiver')
    const open = ws
    const heard = new Promise<{ value: unknown, state: number }>((resolve) => {
      parser.prependListener(event, (value: unknown) => { resolve({ value, state: open.readyState }) })
    })
    toServer.write(frame)
    const ac = new AbortController()
    const result = await Promise.race([heard, delay(PROBE_WAIT_MS, null, { signal: ac.signal }).catch(() => null)])
    ac.abort()
    if (result === null) throw missingParser(`no '${event}' event within ${PROBE_WAIT_MS} ms`)
    if (result.state !== WebSocket.OPEN) throw missingParser(`ws had answered before its '${event}' listeners ran`)
    return { value: result.value }
  } finally {
    ws?.terminate()
    socket.destroy()
  }
}
