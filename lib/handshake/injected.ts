import type { IncomingMessage } from 'node:http'
import { Socket } from 'node:net'
import type { Duplex } from 'node:stream'

/**
 * @fastify/websocket's `injectWS` connects a test client to the app through memory: its upgrade request is a
 * plain object with no Host and no address, and its stream is no TCP socket. That the request came over no
 * network socket is what tells it apart, whatever else a later injectWS puts on it.
 */
export function isInjected (req: IncomingMessage): boolean {
  return !(req.socket instanceof Socket)
}

/**
 * Gives an injected request the headers Node's parser gives a real one: lower-case names, string values.
 * injectWS passes a test's headers on as written and sends Sec-WebSocket-Version as the number 13, which
 * ws from 8.23.1 on compares as a string and refuses with a 400; and a hook would read what no client
 * can send. Duplicates a lower-cased name brings together are joined with ", " as Node joins repeated
 * fields (Set-Cookie stays a list).
 */
export function normalizeInjectedHeaders (req: IncomingMessage): void {
  if (!isInjected(req)) return
  const headers = req.headers as Record<string, unknown>
  const given = Object.entries(headers)
  for (const [field] of given) delete headers[field]
  for (const [field, value] of given) {
    if (value === undefined || value === null) continue
    const name = field.toLowerCase()
    const values = (Array.isArray(value) ? value : [value]).map(String)
    const before = headers[name] as string | string[] | undefined
    if (name === 'set-cookie') headers[name] = [...(before ?? []), ...values]
    else headers[name] = (before === undefined ? values : [before as string, ...values]).join(', ')
  }
}

/**
 * Unlike a TCP socket, injectWS's stream does not close by itself once both sides have ended, so ws would
 * wait `closeTimeout` after every close handshake (and `app.close()` with it). This destroys it then, as the
 * kernel closes a TCP connection that both ends have shut down.
 */
export function closeWhenBothEnded (stream: Duplex): void {
  let ended = false
  let finished = false
  stream.once('end', () => {
    ended = true
    if (finished) stream.destroy()
  })
  stream.once('finish', () => {
    finished = true
    if (ended) stream.destroy()
  })
}
