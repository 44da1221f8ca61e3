/**
 * What `wsSend` and the lwsc client send: a string as a text message, bytes (a Buffer or any Uint8Array)
 * as a binary one.
 */
export type WsData = string | Buffer | Uint8Array

export function isPayload (data: unknown): data is WsData {
  return typeof data === 'string' || data instanceof Uint8Array
}
