import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import net from 'node:net'

export interface RawResponse {
  statusLine: string
  status: number
  headers: Record<string, string>
  /** Header lines as sent (repeated names kept), lower-cased names. */
  headerLines: Array<[string, string]>
  body: string
  /** Bytes after the head of a 101 (frames the server sent right away). */
  rest: Buffer
}

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

export function acceptFor (key: string): string {
  return createHash('sha1').update(key + GUID).digest('base64')
}

export function newKey (): string {
  return randomBytes(16).toString('base64')
}

/** The lines of a valid opening handshake; tests edit them to make bad ones. */
export function handshakeLines (port: number, extra: Record<string, string | null> = {}, first = 'GET / HTTP/1.1'): string[] {
  const headers: Record<string, string | null> = {
    Host: `127.0.0.1:${port}`,
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': newKey(),
    'Sec-WebSocket-Version': '13',
    'Sec-WebSocket-Protocol': 'sip',
    ...extra
  }
  return headLines(first, headers)
}

/** A request line and header lines; a null value leaves that header out. */
function headLines (first: string, headers: Record<string, string | null>): string[] {
  const lines = [first]
  for (const [name, value] of Object.entries(headers)) if (value !== null) lines.push(`${name}: ${value}`)
  return lines
}

/**
 * One HTTP/1.1 request with exactly the headers given (a Host naming 127.0.0.1 unless one is given; null
 * leaves it out), a Content-Length for the body, and the connection closed after the answer. For the
 * headers `fetch` will not let a caller set: Host, Sec-Fetch-Site.
 */
export async function httpRequest (port: number, method: string, path: string, headers: Record<string, string | null> = {}, body = '', version = '1.1'): Promise<RawResponse> {
  const head = headLines(`${method} ${path} HTTP/${version}`, { Host: `127.0.0.1:${port}`, Connection: 'close', ...headers, 'Content-Length': String(Buffer.byteLength(body)) })
  const res = await rawRequest(port, request(head) + body)
  res.socket.destroy()
  return res
}

export function parseHead (buf: Buffer): RawResponse | null {
  const end = buf.indexOf('\r\n\r\n')
  if (end === -1) return null
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n')
  const statusLine = lines[0]
  const headerLines: Array<[string, string]> = lines.slice(1).map((line) => {
    const colon = line.indexOf(':')
    return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]
  })
  const headers: Record<string, string> = {}
  for (const [name, value] of headerLines) headers[name] = name in headers ? `${headers[name]}, ${value}` : value
  const rest = buf.subarray(end + 4)
  return { statusLine, status: Number(statusLine.split(' ')[1]), headers, headerLines, body: '', rest }
}

/**
 * Sends raw bytes and reads one HTTP response: the head, then a body of Content-Length bytes (or until the
 * server closes). A 101 resolves at the end of its head with the open socket.
 */
export async function rawRequest (port: number, request: string | Buffer, timeoutMs = 5000): Promise<RawResponse & { socket: net.Socket }> {
  const socket = net.connect(port, '127.0.0.1')
  socket.setNoDelay(true)
  await once(socket, 'connect')
  socket.write(request)
  return await readResponse(socket, timeoutMs)
}

export async function readResponse (socket: net.Socket, timeoutMs = 5000, bodyless = false): Promise<RawResponse & { socket: net.Socket }> {
  return await new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0)
    let head: RawResponse | null = null
    const timer = setTimeout(() => { finish(new Error(`no complete response within ${timeoutMs} ms: ${buf.toString('latin1').slice(0, 200)}`)) }, timeoutMs)
    const finish = (err?: Error): void => {
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('close', onClose)
      socket.off('error', onError)
      if (err !== undefined) reject(err)
      else if (head !== null) resolve({ ...head, socket })
    }
    const tryComplete = (ended: boolean): void => {
      if (head === null) head = parseHead(buf)
      if (head === null) {
        if (ended) finish(new Error(`connection closed before a response head: ${JSON.stringify(buf.toString('latin1'))}`))
        return
      }
      const bodyBytes = buf.subarray(buf.indexOf('\r\n\r\n') + 4)
      if (head.status === 101) { head.rest = bodyBytes; finish(); return }
      // The answer to a HEAD request has a Content-Length but no body.
      if (bodyless) { finish(); return }
      const length = head.headers['content-length']
      if (length !== undefined && bodyBytes.length >= Number(length)) {
        head.body = bodyBytes.subarray(0, Number(length)).toString()
        finish()
      } else if (ended) {
        head.body = bodyBytes.toString()
        finish()
      }
    }
    const onData = (chunk: Buffer): void => { buf = Buffer.concat([buf, chunk]); tryComplete(false) }
    const onClose = (): void => { tryComplete(true) }
    const onError = (): void => { tryComplete(true) }
    socket.on('data', onData)
    socket.on('close', onClose)
    socket.on('error', onError)
  })
}

export function request (lines: string[]): string {
  return lines.join('\r\n') + '\r\n\r\n'
}
