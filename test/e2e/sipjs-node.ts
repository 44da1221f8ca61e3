import assert from 'node:assert/strict'
import type { Invitation, Message, Registerer as RegistererType, Session, UserAgent as UserAgentType } from 'sip.js' with { 'resolution-mode': 'import' }
import WebSocket from 'ws'
import { within } from './helpers'

// sip.js is an ES module; its Web transport calls `new WebSocket(url, 'sip')`, and Node 20 has no global
// WebSocket, so the `ws` package stands in (each test file runs in its own process).
;(globalThis as { WebSocket?: unknown }).WebSocket = WebSocket
// sip.js's Web session description handler announces remote tracks with a MediaStreamTrackEvent, which
// @roamhq/wrtc does not define: the DOM's shape is enough.
;(globalThis as { MediaStreamTrackEvent?: unknown }).MediaStreamTrackEvent ??= class MediaStreamTrackEvent extends Event {
  readonly track: unknown
  constructor (type: string, init: { track: unknown }) {
    super(type)
    this.track = init.track
  }
}

export type SipJs = typeof import('sip.js', { with: { 'resolution-mode': 'import' } })

/** A sip.js UserAgent registered through the example, with the MESSAGEs it received (each answered 200) and the calls. */
export interface Peer {
  ua: UserAgentType
  registerer: RegistererType
  messages: Message[]
  onMessage: (() => void) | null
  invitations: Invitation[]
  onInvite: (() => void) | null
}

export async function peer (sip: SipJs, wsUrl: string, user: string): Promise<Peer> {
  const uri = sip.UserAgent.makeURI(`sip:${user}@127.0.0.1`)
  assert.ok(uri !== undefined)
  const inbox: Pick<Peer, 'messages' | 'onMessage' | 'invitations' | 'onInvite'> = { messages: [], onMessage: null, invitations: [], onInvite: null }
  const ua = new sip.UserAgent({
    uri,
    transportOptions: { server: wsUrl, connectionTimeout: 5 },
    logLevel: 'error',
    logBuiltinEnabled: false,
    userAgentString: `e2e ${user} (sip.js)`,
    delegate: {
      onMessage: (message) => {
        void message.accept()
        inbox.messages.push(message)
        inbox.onMessage?.()
      },
      onInvite: (invitation) => {
        inbox.invitations.push(invitation)
        inbox.onInvite?.()
      }
    }
  })
  await within(5000, `${user} to connect`, ua.start())
  const registerer = new sip.Registerer(ua, { expires: 120 })
  await within(5000, `${user} to register`, new Promise<void>((resolve, reject) => {
    registerer.register({
      requestDelegate: {
        onAccept: () => { resolve() },
        onReject: (response) => { reject(new Error(`${user} registration refused: ${response.message.statusCode ?? 0}`)) }
      }
    }).catch(reject)
  }))
  assert.equal(registerer.state, sip.RegistererState.Registered)
  return Object.assign(inbox, { ua, registerer })
}

/** The next MESSAGE `p` receives (or received). */
export async function nextMessage (p: Peer): Promise<Message> {
  const queued = p.messages.shift()
  if (queued !== undefined) return queued
  await new Promise<void>((resolve) => { p.onMessage = resolve })
  p.onMessage = null
  const message = p.messages.shift()
  assert.ok(message !== undefined)
  return message
}

/** Sends a MESSAGE; resolves with the final response's status. */
export async function send (sip: SipJs, from: Peer, to: string, body: string): Promise<number> {
  const target = sip.UserAgent.makeURI(to)
  assert.ok(target !== undefined)
  const messager = new sip.Messager(from.ua, target, body, 'text/plain')
  return await new Promise<number>((resolve, reject) => {
    messager.message({
      requestDelegate: {
        onAccept: (response) => { resolve(response.message.statusCode ?? 0) },
        onReject: (response) => { resolve(response.message.statusCode ?? 0) }
      }
    }).catch(reject)
  })
}

/** sip.js, an ES module, from this CommonJS test code. */
export async function loadSipJs (): Promise<SipJs> {
  return await import('sip.js')
}

/**
 * What sip.js's Web session description handler needs in Node for a call with no microphone: no local
 * tracks, an audio m-line offered to receive (RTCPeerConnection comes from @roamhq/wrtc, installed as a
 * global by jssip-node's installNodeWebRtc).
 */
export const NO_MEDIA_SDH = { constraints: { audio: false, video: false }, offerOptions: { offerToReceiveAudio: true } }

/** The next call `p` receives (or received). */
export async function nextInvitation (p: Peer): Promise<Invitation> {
  const queued = p.invitations.shift()
  if (queued !== undefined) return queued
  await within(10_000, 'a call for the sip.js UA', new Promise<void>((resolve) => { p.onInvite = resolve }))
  p.onInvite = null
  const invitation = p.invitations.shift()
  assert.ok(invitation !== undefined)
  return invitation
}

/** Resolves once a session reaches `state` (`Established`, `Terminated`); rejects after 10 s. */
export async function sessionState (sip: SipJs, session: Session, state: keyof typeof sip.SessionState): Promise<void> {
  if (session.state === sip.SessionState[state]) return
  await within(10_000, `the sip.js session to be ${state}`, new Promise<void>((resolve) => {
    session.stateChange.addListener((now) => { if (now === sip.SessionState[state]) resolve() })
  }))
}
