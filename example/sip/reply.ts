import { randomBytes } from 'node:crypto'
import { headerKey, SipResponse, type SipRequest } from './message'
import { parseNameAddr } from './uri'

/**
 * A response made by the proxy itself (RFC 3261 §8.2.6): the request's Via lines, From, Call-ID and
 * CSeq copied byte for byte, its To with a tag added on anything but 100, then `extra`, a Warning naming
 * `why` on a final error (unless `extra` has one), `Server` and an empty body. A request read only in
 * part (a parse error) gets what it has of those.
 */
export function localResponse (request: SipRequest, status: number, reason: string, serverName: string, extra: Array<[string, string]> = [], why = ''): SipResponse {
  const response = new SipResponse(status, reason)
  response.encoding = request.encoding
  for (const h of request.headers) {
    if (headerKey(h.name) === 'via') response.headers.push({ ...h })
  }
  for (const key of ['from', 'to', 'call-id', 'cseq']) {
    const header = request.headers.find((h) => headerKey(h.name) === key)
    if (header === undefined) continue
    if (key === 'to' && status > 100 && parseNameAddr(header.value)?.params.has('tag') === false) {
      response.headers.push({ name: header.name, value: `${header.value};tag=${randomBytes(5).toString('hex')}` })
    } else {
      response.headers.push({ ...header })
    }
  }
  for (const [name, value] of extra) response.headers.push({ name, value })
  if (status >= 300 && why !== '' && !extra.some(([name]) => name.toLowerCase() === 'warning')) response.headers.push({ name: 'Warning', value: warning(why) })
  response.headers.push({ name: 'Server', value: serverName })
  response.headers.push({ name: 'Content-Length', value: '0' })
  return response
}

/** A Warning value (RFC 3261 §20.43) carrying a problem: no quote or line break may break it. */
export function warning (problem: string): string {
  return `399 - "${problem.replace(/["\\\r\n]/g, ' ')}"`
}
