import * as JsSIP from 'jssip'
import type { RTCSession, RTCSessionEventMap } from 'jssip/lib/RTCSession'
import type { IncomingResponse } from 'jssip/lib/SIPMessage'
import type { IncomingMessageEvent, OutgoingMessageEvent } from 'jssip/lib/UA'
import WebSocket from 'ws'
import { within } from './helpers'

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

  /** Drops the connection with no un-REGISTER and no Close handshake, as a browser tab that crashed would. */
  drop (): void {
    this.ws?.terminate()
  }

  disconnect (): void {
    const ws = this.ws
    this.ws = null
    ws?.close()
  }

  /** Sends JsSIP tried while the socket was not open (closing under it): they never left this process. */
  refused = 0

  send (message: string | ArrayBufferLike | Blob | ArrayBufferView): boolean {
    if (this.ws?.readyState !== WebSocket.OPEN) {
      this.refused++
      return false
    }
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

/**
 * RTCPeerConnection for JsSIP in Node, from @roamhq/wrtc (libwebrtc). JsSIP looks for it on `window`,
 * which Node does not have. Calls made with it have no media tracks: the SDP is real, nothing is sent.
 */
export function installNodeWebRtc (): void {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const wrtc = require('@roamhq/wrtc') as Record<string, unknown>
  // libwebrtc's native objects crash Node's environment clean-up at a normal exit (SIGSEGV once the last
  // test passed: node-webrtc issue #636). process.exit() skips that clean-up and keeps the exit code the
  // test runner set.
  process.once('beforeExit', () => { process.exit() })
  const g = globalThis as Record<string, unknown>
  for (const name of ['RTCPeerConnection', 'RTCSessionDescription', 'RTCIceCandidate', 'MediaStream']) g[name] ??= wrtc[name]
  g.window ??= { RTCPeerConnection: wrtc.RTCPeerConnection }
}

/** Options for `ua.call()` and `session.answer()`: no microphone, no STUN server (nothing leaves 127.0.0.1). */
export const NO_MEDIA = {
  mediaConstraints: { audio: false, video: false },
  rtcOfferConstraints: { offerToReceiveAudio: true, offerToReceiveVideo: false },
  pcConfig: { iceServers: [] }
}

/** A JsSIP UA over the example's WebSocket, registering as `user`. */
export function userAgent (url: string, user: string, domain = '127.0.0.1'): { ua: JsSIP.UA, socket: NodeWebSocketInterface } {
  const socket = new NodeWebSocketInterface(url)
  const ua = new JsSIP.UA({
    sockets: [socket],
    uri: `sip:${user}@${domain}`,
    register: true,
    register_expires: 120,
    session_timers: false,
    user_agent: `e2e ${user} (JsSIP ${JsSIP.version})`
  })
  return { ua, socket }
}

export async function registered (ua: JsSIP.UA, user: string): Promise<void> {
  await within(5000, `${user} to register`, new Promise<void>((resolve, reject) => {
    ua.once('registered', () => { resolve() })
    ua.once('registrationFailed', (e) => { reject(new Error(`${user} registration failed: ${e.cause ?? 'unknown'}`)) })
  }))
}

export async function incomingMessage (ua: JsSIP.UA): Promise<IncomingMessageEvent> {
  return await new Promise((resolve) => {
    const listener = (e: IncomingMessageEvent | OutgoingMessageEvent): void => {
      if (e.originator !== 'remote') return
      ua.off('newMessage', listener)
      resolve(e as IncomingMessageEvent)
    }
    ua.on('newMessage', listener)
  })
}

export async function send (ua: JsSIP.UA, target: string, body: string): Promise<{ ok: boolean, status: number, reason: string }> {
  return await new Promise((resolve) => {
    ua.sendMessage(target, body, {
      contentType: 'text/plain;charset=utf-8',
      eventHandlers: {
        succeeded: (e) => {
          const response = e.response as IncomingResponse
          resolve({ ok: true, status: response.status_code, reason: response.reason_phrase })
        },
        failed: (e) => { resolve({ ok: false, status: e.response?.status_code ?? 0, reason: e.response?.reason_phrase ?? String(e.cause) }) }
      }
    })
  })
}

export async function stop (ua: JsSIP.UA, user: string): Promise<void> {
  if (!ua.isConnected()) {
    ua.stop()
    return
  }
  const gone = new Promise<void>((resolve) => { ua.once('disconnected', () => { resolve() }) })
  ua.stop()
  await within(5000, `${user} to disconnect`, gone)
}

/** Resolves on the session's `event`; rejects if the session fails first. */
export async function sessionEvent<K extends keyof RTCSessionEventMap> (session: RTCSession, event: K, what: string): Promise<void> {
  await within(10000, what, new Promise<void>((resolve, reject) => {
    session.once(event, () => { resolve() })
    if (event !== 'failed') session.once('failed', (e) => { reject(new Error(`${what}: the session failed (${e.cause})`)) })
  }))
}

/** The next call a UA receives. */
export async function incomingCall (ua: JsSIP.UA): Promise<RTCSession> {
  return await within(10000, 'an incoming call', new Promise((resolve) => {
    ua.once('newRTCSession', (e) => { resolve(e.session) })
  }))
}
