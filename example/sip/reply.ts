import { randomBytes } from 'node:crypto'
import { SipResponse, type SipRequest } from './message'
import { parseNameAddr } from './uri'

/**
 * A response made by the proxy itself (RFC 3261 §8.2.6): the request's Via lines, From, To, Call-ID and
 * CSeq, a To tag on anything but 100, then `extra`, `Server` and an empty body.
 */
export function localResponse (request: SipRequest, status: number, reason: string, serverName: string, extra: Array<[string, string]> = []): SipResponse {
  const response = new SipResponse(status, reason)
  for (const h of request.headers) {
    const key = h.name.toLowerCase()
    if (key === 'via' || key === 'v') response.headers.push({ name: 'Via', value: h.value })
  }
  for (const name of ['From', 'To', 'Call-ID', 'CSeq']) {
    let value = request.get(name)
    if (value === undefined) continue
    if (name === 'To' && status > 100 && parseNameAddr(value)?.params.has('tag') === false) {
      value += `;tag=${randomBytes(5).toString('hex')}`
    }
    response.headers.push({ name, value })
  }
  for (const [name, value] of extra) response.headers.push({ name, value })
  response.headers.push({ name: 'Server', value: serverName })
  response.headers.push({ name: 'Content-Length', value: '0' })
  return response
}
