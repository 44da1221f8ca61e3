import { parseCSeq } from './headers'
import type { SipRequest } from './message'
import { parseNameAddr } from './uri'
import { topVia } from './via'

const DEFAULT_MAX_FORWARDS = 70

/** RFC 3261 §16.3 request validation, plus the headers §8.1.1 says every request has. */
export function validate (request: SipRequest): string | null {
  for (const name of ['Via', 'From', 'To', 'Call-ID', 'CSeq']) {
    if (!request.has(name)) return `missing ${name}`
  }
  if (topVia(request) === null) return 'bad Via'
  if (parseNameAddr(request.get('from') ?? '') === null) return 'bad From'
  if (parseNameAddr(request.get('to') ?? '') === null) return 'bad To'
  const cseq = parseCSeq(request.get('cseq') ?? '')
  if (cseq === null) return 'bad CSeq'
  if (cseq.method !== request.method) return 'CSeq method does not match the request'
  const maxForwards = request.get('max-forwards')
  if (maxForwards !== undefined && !/^\d{1,3}$/.test(maxForwards)) return 'bad Max-Forwards'
  if (maxForwards !== undefined && Number(maxForwards) > 255) return 'bad Max-Forwards'
  return null
}

/**
 * RFC 3261 §16.6 step 3: one hop less, or 70 when the request had no Max-Forwards. False when it was
 * already 0 and the request must be answered 483 instead (§16.3 step 2).
 */
export function decrementMaxForwards (request: SipRequest): boolean {
  const value = request.get('max-forwards')
  if (value === undefined) {
    request.set('Max-Forwards', String(DEFAULT_MAX_FORWARDS))
    return true
  }
  const forwards = Number(value)
  if (forwards === 0) return false
  request.set('Max-Forwards', String(forwards - 1))
  return true
}

/** A request that has no To tag: it may start a dialog, so a proxy that wants to stay on the path records a route. */
export function startsDialog (request: SipRequest): boolean {
  if (!['INVITE', 'SUBSCRIBE', 'REFER'].includes(request.method)) return false
  return parseNameAddr(request.get('to') ?? '')?.params.has('tag') === false
}
