import * as api from './index'

/**
 * The package's entry point, shaped as Fastify's own plugins are: `module.exports` is the plugin itself, with
 * `.default` and `.sipWs` pointing at it and the other exports beside them. So `require()`, a default import
 * and a named import give the same function from CommonJS, Node ESM and TypeScript (`module: commonjs` or
 * `nodenext`), and the types say exactly that.
 */
type SipWsPlugin = typeof api.sipWs & {
  default: SipWsPlugin
  sipWs: SipWsPlugin
  errors: typeof api.errors
  LwscClient: typeof api.LwscClient
}

const sipWs = api.sipWs as SipWsPlugin

// eslint-disable-next-line @typescript-eslint/no-namespace
declare namespace sipWs {
  export type SipWsOptions = api.SipWsOptions
  export type LwscOptions = api.LwscOptions
  export type WsData = api.WsData
  export type WsMessage = api.WsMessage
  export type WsTextMessage = api.WsTextMessage
  export type WsBinaryMessage = api.WsBinaryMessage
  export type WsOpenEvent = api.WsOpenEvent
  export type WsClosedEvent = api.WsClosedEvent
  export type XhttpRequestHook = api.XhttpRequestHook
  export type WsOpenHook = api.WsOpenHook
  export type WsMessageHook = api.WsMessageHook
  export type WsClosedHook = api.WsClosedHook
  export type WsHookMap = api.WsHookMap
  export type WsHookName = api.WsHookName
  export type ConnectionInfo = api.ConnectionInfo
  export type DumpOrder = api.DumpOrder
  export type DumpResult = api.DumpResult
  export type ClosedBy = api.ClosedBy
  export type ConnectionState = api.ConnectionState
  export type StatsSnapshot = api.StatsSnapshot
  export type LwscClient = api.LwscClient
  export type LwscLogger = api.LwscLogger
  export type LwscStats = api.LwscStats
  export type LwscError = api.LwscError
  export type SipWsErrorCode = api.SipWsErrorCode
  export type WsCluster = api.WsCluster
  export type ClusterDump = api.ClusterDump
  export type ClusterStats = api.ClusterStats
  export type ClusterNodeInfo = api.ClusterNodeInfo
  export type MissingNode = api.MissingNode
  export type RedisSource = api.RedisSource
  export type RedisClientLike = api.RedisClientLike
  export type RedisSentinelOptions = api.RedisSentinelOptions
  export type ClusterNodeDownHook = api.ClusterNodeDownHook
  export type ClusterRejoinedHook = api.ClusterRejoinedHook
  export type ClusterRejoinedEvent = api.ClusterRejoinedEvent
  export type RejoinReason = api.RejoinReason
}

// Node's ESM loader finds a CommonJS module's named exports by reading its source for these assignments
// (cjs-module-lexer), so each is written out; `export =` below types them and sets module.exports last.
module.exports = sipWs
module.exports.default = sipWs
module.exports.sipWs = sipWs
module.exports.errors = api.errors
module.exports.LwscClient = api.LwscClient

export = sipWs
