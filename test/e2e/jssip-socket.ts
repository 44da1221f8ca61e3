import type * as JsSIP from 'jssip'
import WebSocket from 'ws'

/**
 * JsSIP's Socket interface (https://jssip.net/documentation/3.10.x/api/socket/) over the `ws` package:
 * Node 20 has no global WebSocket for JsSIP.WebSocketInterface to use.
 */
export class NodeWebSocketInterface implements JsSIP.Socket {
  private ws: WebSocket | null = null
  /** What happened to each connection attempt, in order (`open`, `close 1001`, `refused 503 Retry-After 5`, `error ECONNREFUSED`), for tests. */
  readonly history: string[] = []
  private transport = 'WS'
  readonly sip_uri: string

  constructor (readonly url: string) {
    this.sip_uri = `sip:${new URL(url).host};transport=ws`
  }

  get via_transport (): string { return this.transport }
  set via_transport (value: string) { this.transport = value.toUpperCase() }

  connect (): void {
    if (this.ws !== null) return
    const ws = new WebSocket(this.url, 'sip')
    this.ws = ws
    ws.on('open', () => { this.history.push('open'); this.onconnect() })
    ws.on('unexpected-response', (_req, res) => {
      this.history.push(`refused ${String(res.statusCode)} Retry-After ${String(res.headers['retry-after'])}`)
      res.resume()
      ws.terminate()
    })
    ws.on('message', (data: Buffer, isBinary: boolean) => { this.ondata(isBinary ? data : data.toString()) })
    ws.on('close', (code: number, reason: Buffer) => {
      this.history.push(`close ${code}`)
      if (this.ws === ws) this.ws = null
      this.ondisconnect(code !== 1000, code, reason.toString())
    })
    // A refused or broken connection ends in 'close' too; JsSIP reconnects on ondisconnect.
    ws.on('error', (err: NodeJS.ErrnoException) => { if (err.code !== undefined) this.history.push(`error ${err.code}`) })
  }

  disconnect (): void {
    const ws = this.ws
    this.ws = null
    ws?.close()
  }

  send (message: string | ArrayBufferLike | Blob | ArrayBufferView): boolean {
    if (this.ws?.readyState !== WebSocket.OPEN) return false
    this.ws.send(message as string)
    return true
  }

  isConnected (): boolean { return this.ws?.readyState === WebSocket.OPEN }
  isConnecting (): boolean { return this.ws?.readyState === WebSocket.CONNECTING }

  // Replaced by JsSIP's transport.
  onconnect (): void {}
  ondisconnect (_error: boolean, _code?: number, _reason?: string): void {}
  ondata<T> (_event: T): void {}
}

