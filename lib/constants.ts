// eslint-disable-next-line @typescript-eslint/no-require-imports
export const VERSION: string = (require('../package.json') as { version: string }).version
export const SERVER_NAME = `fastify-sip-ws (${VERSION})`

export const WS_VERSION = 13

/**
 * RFC 7230 token: what a sub-protocol name may be (RFC 6455 §4.1, item 10). The option schema takes the
 * pattern, the handshake and the client the RegExp.
 */
export const TOKEN_PATTERN = '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$'
export const TOKEN = new RegExp(TOKEN_PATTERN)

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

/**
 * The close code for each of ws's documented frame errors (its `err.code`, doc/ws.md "Error codes"), as
 * RFC 6455 §7.4.1 assigns them. A code ws adds later gets 1002, the generic protocol error.
 */
export const FRAME_ERROR_CLOSE_CODES: Readonly<Record<string, number>> = {
  WS_ERR_EXPECTED_FIN: CLOSE_PROTOCOL_ERROR,
  WS_ERR_EXPECTED_MASK: CLOSE_PROTOCOL_ERROR,
  WS_ERR_INVALID_CLOSE_CODE: CLOSE_PROTOCOL_ERROR,
  WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH: CLOSE_PROTOCOL_ERROR,
  WS_ERR_INVALID_OPCODE: CLOSE_PROTOCOL_ERROR,
  WS_ERR_UNEXPECTED_MASK: CLOSE_PROTOCOL_ERROR,
  WS_ERR_UNEXPECTED_RSV_1: CLOSE_PROTOCOL_ERROR,
  WS_ERR_UNEXPECTED_RSV_2_3: CLOSE_PROTOCOL_ERROR,
  WS_ERR_INVALID_UTF8: CLOSE_INVALID_PAYLOAD,
  WS_ERR_TOO_MANY_BUFFERED_PARTS: CLOSE_POLICY,
  WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH: CLOSE_TOO_BIG,
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: CLOSE_TOO_BIG
}

// Kamailio's sub_protocols bitmap.
export const SUB_PROTOCOL_BITS: Readonly<Record<string, number>> = { sip: 1, msrp: 2 }

/** `wsDump`'s orders, as Kamailio's `ws.dump` names them. */
export const DUMP_ORDERS = ['id_hash', 'used_desc', 'used_asc'] as const
/** Connections a dump lists at most, as Kamailio's. */
export const DUMP_LIMIT = 50
