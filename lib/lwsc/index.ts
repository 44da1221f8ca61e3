export { LwscClient } from './client'
export type { LwscLogger } from './logger'
export type { LwscStats } from './stats'
export type { LwscError } from './error-url'
export type { LwscOptions, LwscOptionsResolved } from '../options'
export {
  LwscBadUrlError,
  LwscClosedError,
  LwscConnectionError,
  LwscConnectTimeoutError,
  LwscProtocolRefusedError,
  LwscQueueFullError,
  LwscReadTimeoutError
} from '../errors'
