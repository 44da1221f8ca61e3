import createError from '@fastify/error'
import { targetError } from './lwsc/error-url'

// Stable codes: users match on `err.code`, so never rename one.
//
// Status: 400 when a caller's argument is wrong (an id, a close status, a dump order, a URL, data to send),
// so a route that passes a request's value on and lets the error through answers 400. 500 for the app's
// own set-up (options at register, hooks), as Fastify's own set-up errors are, and for a dependency that
// lacks what this package relies on.
//
// The lwsc errors' first argument is their target: each error also has it in `url` (targetError).

export const InvalidOptionError = createError('FST_SIPWS_INVALID_OPTION', 'Invalid option %s: %s', 500, TypeError)
export const UnknownHookError = createError('FST_SIPWS_UNKNOWN_HOOK', 'Unknown hook "%s"; expected one of %s', 500, TypeError)
export const HookNotFunctionError = createError('FST_SIPWS_HOOK_NOT_FUNCTION', 'The %s hook must be a function, got %s', 500, TypeError)
export const BadDumpOrderError = createError('FST_SIPWS_BAD_DUMP_ORDER', 'Bad display order parameter: "%s"; expected id_hash, used_desc or used_asc', 400, TypeError)
export const BadConnectionIdError = createError('FST_SIPWS_BAD_CONNECTION_ID', '%s: expected a connection id (an integer), got %s', 400, TypeError)
export const InvalidArgumentError = createError('FST_SIPWS_INVALID_ARGUMENT', 'Invalid argument %s: %s', 400, TypeError)
export const MissingInternalError = createError('FST_SIPWS_MISSING_INTERNAL', 'fastify-sip-ws relies on %s, which the installed %s lacks (%s); install the versions its package.json allows', 500)

export const LwscBadUrlError = targetError(createError('FST_SIPWS_LWSC_BAD_URL', 'lwsc: invalid WebSocket URL "%s": expected ws:// or wss://', 400, TypeError))
export const LwscConnectTimeoutError = targetError(createError('FST_SIPWS_LWSC_CONNECT_TIMEOUT', 'lwsc: connecting to %s timed out after %d ms', 504))
export const LwscReadTimeoutError = targetError(createError('FST_SIPWS_LWSC_READ_TIMEOUT', 'lwsc: no reply from %s within %d ms', 504))
export const LwscConnectionError = targetError(createError('FST_SIPWS_LWSC_CONNECTION_FAILED', 'lwsc: connection to %s failed: %s', 502))
export const LwscProtocolRefusedError = targetError(createError('FST_SIPWS_LWSC_PROTOCOL_REFUSED', 'lwsc: %s refused sub-protocol "%s"', 502))
export const LwscQueueFullError = targetError(createError('FST_SIPWS_LWSC_QUEUE_FULL', 'lwsc: queue for %s is full (%d waiting)', 503))
export const LwscClosedError = targetError(createError('FST_SIPWS_LWSC_CLOSED', 'lwsc: client is closed; cannot send to %s', 503))
export const InvalidCloseError = createError('FST_SIPWS_INVALID_CLOSE', 'Invalid close %s: %s', 400, TypeError)
export const InvalidDrainError = createError('FST_SIPWS_INVALID_DRAIN', 'wsDrain: %s', 400, TypeError)
export const ClusterUnavailableError = createError('FST_SIPWS_CLUSTER_UNAVAILABLE', 'cluster: %s', 503)
export const ClusterTimeoutError = createError('FST_SIPWS_CLUSTER_TIMEOUT', 'cluster: no answer from the owning node within requestTimeout (%d ms)', 504)
export const ClusterNodeGoneError = createError('FST_SIPWS_CLUSTER_NODE_GONE', 'cluster: node %s went away before it answered', 503)
