// eslint-disable-next-line @typescript-eslint/no-require-imports
export const VERSION: string = (require('../package.json') as { version: string }).version
export const SERVER_NAME = `fastify-sip-ws (${VERSION})`

export const WS_VERSION = 13

/** What a 503 asks a client to wait before it tries again (connection limits, drain, shutdown). */
export const RETRY_AFTER_SECONDS = 5

// RFC 6455 §7.4.1 close codes this package sends, with the reason text put in the Close frame.
export const CLOSE_NORMAL = 1000
export const CLOSE_GOING_AWAY = 1001
export const CLOSE_PROTOCOL_ERROR = 1002
export const CLOSE_ABNORMAL = 1006
export const CLOSE_INVALID_PAYLOAD = 1007
export const CLOSE_POLICY = 1008
export const CLOSE_TOO_BIG = 1009
export const CLOSE_INTERNAL_ERROR = 1011

export const CLOSE_REASONS: Readonly<Record<number, string>> = {
  1000: 'Normal closure',
  1001: 'Going Away',
  1002: 'Protocol error',
  1007: 'Invalid frame payload data',
  1008: 'Policy violation',
  1009: 'Message too big',
  1011: 'Internal error'
}

// Kamailio's sub_protocols bitmap.
export const SUB_PROTOCOL_BITS: Readonly<Record<string, number>> = { sip: 1, msrp: 2 }
