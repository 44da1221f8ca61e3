import { TOKEN } from '../constants'
import { InvalidArgumentError, LwscBadUrlError } from '../errors'
import { withUrl } from './error-url'

/**
 * Checks a target once, when its endpoint is first created; later calls with the same strings hit the
 * endpoint cache and skip the URL parser.
 */
export function checkTarget (url: unknown, proto: unknown): void {
  if (typeof url !== 'string') throw new LwscBadUrlError(String(url))
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new LwscBadUrlError(url)
  }
  // A fragment has no meaning in a WebSocket URI (RFC 6455 §3) and ws refuses it.
  if ((parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') || parsed.hostname === '' || parsed.hash !== '') {
    throw new LwscBadUrlError(url)
  }
  // RFC 6455 §4.1: a sub-protocol is a token; ws would throw a bare SyntaxError otherwise.
  if (typeof proto !== 'string' || !TOKEN.test(proto)) {
    throw withUrl(new InvalidArgumentError('"proto"', `expected a sub-protocol name (an RFC 7230 token), got ${JSON.stringify(proto) ?? String(proto)}`), url)
  }
}
