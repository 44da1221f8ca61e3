import assert from 'node:assert/strict'
import { ServerResponse, type IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { describe, test } from 'node:test'
import { WebSocket, WebSocketServer } from 'ws'
import { checkInternals } from '../../../lib/handshake/internals'

// A dependency that lacks an internal cannot be installed here: these stand-ins are the real ws and Node
// classes with exactly that one thing taken away.

/** ws whose upgraded WebSockets keep their frame parser somewhere else than `_receiver`. */
class WebSocketServerWithoutParser extends WebSocketServer {
  override handleUpgrade (req: IncomingMessage, socket: Duplex, head: Buffer, callback: (ws: WebSocket, req: IncomingMessage) => void): void {
    super.handleUpgrade(req, socket, head, (ws) => {
      const moved = Object.create(ws) as WebSocket & { _receiver: unknown }
      moved._receiver = undefined
      callback(moved, req)
    })
  }
}

/** A Node without `ServerResponse#detachSocket()`. */
class ResponseWithoutDetach extends ServerResponse {}
Object.defineProperty(ResponseWithoutDetach.prototype, 'detachSocket', { value: undefined })

// What the frame parser is for is tested end to end in frames.test.ts (Close 1000 "Normal closure" to an
// empty Close, reason texts on error Closes).
describe('dependency internals (lib/internals.ts)', () => {
  test('the installed ws and Node have every internal the server relies on', async () => {
    await checkInternals()
    await checkInternals({ WebSocketServer, ServerResponse })
  })

  test('a ws without the frame parser fails loudly, naming it', async () => {
    await assert.rejects(checkInternals({ WebSocketServer: WebSocketServerWithoutParser, ServerResponse }), (err: Error & { code?: string, statusCode?: number }) => {
      assert.equal(err.code, 'FST_SIPWS_MISSING_INTERNAL')
      assert.equal(err.statusCode, 500)
      assert.match(err.message, /relies on ws's frame parser \(WebSocket#_receiver\) and its 'conclude' and 'error' events, which the installed ws lacks \(an upgraded WebSocket has no _receiver\)/)
      return true
    })
  })

  test('a Node without ServerResponse#detachSocket() fails loudly, naming it', async () => {
    await assert.rejects(checkInternals({ WebSocketServer, ServerResponse: ResponseWithoutDetach }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'FST_SIPWS_MISSING_INTERNAL')
      assert.match(err.message, /relies on ServerResponse#detachSocket\(\), which the installed Node\.js v\d+\.\d+\.\d+ lacks \(no such method\)/)
      return true
    })
  })
})
