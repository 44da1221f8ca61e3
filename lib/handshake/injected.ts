import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'

/**
 * @fastify/websocket's `injectWS` connects a test client to the app through memory: its upgrade request is a
 * plain object with no socket, no Host and no address, and its stream is no TCP socket.
 */
export function isInjected (req: IncomingMessage): boolean {
  return req.socket == null
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
