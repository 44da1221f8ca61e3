import { channel, type Channel } from 'node:diagnostics_channel'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { WsHookName } from '../hooks'
import type { ClosedBy } from '../types'

/**
 * The `node:diagnostics_channel` channels the plugin publishes on, by name. A message is built only while a
 * channel has subscribers (`channel.hasSubscribers`), so a process that observes nothing pays nothing per
 * message. Channels are process-wide: every message names the `app` it comes from.
 */
export const CHANNELS = {
  handshake: 'fastify-sip-ws:handshake',
  open: 'fastify-sip-ws:open',
  message: 'fastify-sip-ws:message',
  close: 'fastify-sip-ws:close',
  hook: 'fastify-sip-ws:hook'
} as const

/** How a handshake ended: a 101, an HTTP refusal (by a check, a hook or a plugin), or `handshakeTimeout`. */
export type HandshakeResult = 'accepted' | 'refused' | 'timed_out'

/** `fastify-sip-ws:handshake`: an upgrade request answered, or dropped by `handshakeTimeout`. */
export interface HandshakeChannelMessage {
  app: FastifyInstance
  /** Null for a connection dropped before its request head was complete, or refused during shutdown. */
  request: FastifyRequest | null
  result: HandshakeResult
  /** 101 accepted, the refusal's status, 408 for `handshakeTimeout`. */
  status: number
  /** The new connection's id; null unless accepted. */
  id: number | null
  subProtocol: string | null
  remoteAddress: string
  /** When the request arrived, ms since the epoch. */
  startTime: number
  /** From its arrival to its answer, ms. */
  duration: number
}

/** `fastify-sip-ws:open`: a connection accepted. */
export interface OpenChannelMessage {
  app: FastifyInstance
  id: number
  subProtocol: string
  remoteAddress: string
  remotePort: number
  /** The upgrade request's id (`request.id`). */
  requestId: string
  createdAt: number
}

/** `fastify-sip-ws:message`: one message received (`in`) or sent with `wsSend` (`out`). */
export interface MessageChannelMessage {
  app: FastifyInstance
  id: number
  subProtocol: string
  direction: 'in' | 'out'
  binary: boolean
  /** Bytes of the payload. */
  size: number
}

/** `fastify-sip-ws:close`: a connection gone, once each, as its `websocket:closed` event. */
export interface CloseChannelMessage {
  app: FastifyInstance
  id: number
  subProtocol: string
  code: number
  reason: string
  by: ClosedBy
  requestId: string
  createdAt: number
  /** From open to close, ms. */
  lifetime: number
}

/** `fastify-sip-ws:hook`: one hook call settled (or gave up on after `hookTimeout`). */
export interface HookChannelMessage {
  app: FastifyInstance
  hook: WsHookName
  /** The connection's id; null for `xhttp:request` and `rpc:request`. */
  id: number | null
  outcome: 'ok' | 'error' | 'timeout'
  /** When the call began, ms since the epoch. */
  startTime: number
  duration: number
}

/** Each channel's name and the message published on it. */
export interface SipWsChannelMessages {
  'fastify-sip-ws:handshake': HandshakeChannelMessage
  'fastify-sip-ws:open': OpenChannelMessage
  'fastify-sip-ws:message': MessageChannelMessage
  'fastify-sip-ws:close': CloseChannelMessage
  'fastify-sip-ws:hook': HookChannelMessage
}

export const handshakeChannel: Channel = channel(CHANNELS.handshake)
export const openChannel: Channel = channel(CHANNELS.open)
export const messageChannel: Channel = channel(CHANNELS.message)
export const closeChannel: Channel = channel(CHANNELS.close)
export const hookChannel: Channel = channel(CHANNELS.hook)

/** Listens on `channel` to the messages of one app; returns what stops it. */
export function subscribeApp<M extends { app: FastifyInstance }> (channel: Channel, app: FastifyInstance, on: (message: M) => void): () => void {
  const listener = (message: unknown): void => { if ((message as M).app === app) on(message as M) }
  channel.subscribe(listener)
  return () => { channel.unsubscribe(listener) }
}

/** Milliseconds since the epoch at `performance.now()` time `at`. */
export function epochOf (at: number): number {
  return performance.timeOrigin + at
}
