import { listElements, parseCSeq, splitList } from './headers'
import type { SipMessage, SipRequest, SipResponse } from './message'
import { CALL_ID } from './syntax'
import { parseNameAddr, parseUri } from './uri'
import { allVias } from './via'

const DEFAULT_MAX_FORWARDS = 70

/** Why a request is refused: the status, its reason phrase, and the problem for the Warning and the log. */
export interface Refusal {
  status: number
  reason: string
  problem: string
  extra?: Array<[string, string]>
}

/** Headers a message may have once only (RFC 3261 §20: none of them is a comma list; RFC 4475 §3.3.9). */
const SINGLE = ['To', 'From', 'Call-ID', 'CSeq', 'Max-Forwards', 'Content-Type', 'Expires', 'Date']
const DATE = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/

const bad = (problem: string): Refusal => ({ status: 400, reason: 'Bad Request', problem })

/**
 * RFC 3261 §16.3 request validation, and the syntax of every header the edge reads or that a receiver
 * could read two ways (RFC 4475 §3.1.2): a 400 naming the problem, 416 for a Request-URI scheme the edge
 * cannot route, 420 for a Proxy-Require it does not support; null when the request may go on.
 */
export function checkRequest (request: SipRequest): Refusal | null {
  const problem = checkHeaders(request)
  if (problem !== null) return bad(problem)
  const cseq = parseCSeq(request.get('cseq') ?? '')
  if (cseq?.method !== request.method) return bad('CSeq method does not match the request')
  const maxForwards = request.get('max-forwards')
  if (maxForwards !== undefined && (!/^\d{1,9}$/.test(maxForwards) || Number(maxForwards) > 255)) return bad('bad Max-Forwards')
  for (const name of ['Route', 'Record-Route']) {
    if (!request.getAll(name).flatMap(listElements).every((value) => value.includes('<') && parseNameAddr(value) !== null)) return bad(`bad ${name}`)
  }
  const uri = parseUri(request.uri)
  if (uri === null) return bad('bad Request-URI')
  if (uri.scheme !== 'sip' && uri.scheme !== 'sips') return { status: 416, reason: 'Unsupported URI Scheme', problem: `${uri.scheme}: Request-URI` }
  // RFC 3261 §19.1.1: headers have no place in a Request-URI (RFC 4475 §3.1.2.11).
  if (uri.headers !== '') return bad('headers in the Request-URI')
  const unsupported = splitList(request.getAll('proxy-require').join(','))
  if (unsupported.length > 0) return { status: 420, reason: 'Bad Extension', problem: `Proxy-Require: ${unsupported.join(', ')}`, extra: [['Unsupported', unsupported.join(', ')]] }
  return null
}

/** A response the edge may forward (RFC 3261 §16.7 reads its Via, CSeq and the rest): null, or the problem. */
export function checkResponse (response: SipResponse): string | null {
  return checkHeaders(response)
}

/** The headers both requests and responses must have right; the first problem, or null. */
function checkHeaders (message: SipMessage): string | null {
  for (const name of ['Via', 'From', 'To', 'Call-ID', 'CSeq']) {
    if (!message.has(name)) return `missing ${name}`
  }
  for (const name of SINGLE) {
    if (message.getAll(name).length > 1) return `more than one ${name}`
  }
  if (allVias(message) === null) return 'bad Via'
  if (parseNameAddr(message.get('from') ?? '') === null) return 'bad From'
  if (parseNameAddr(message.get('to') ?? '') === null) return 'bad To'
  if (!CALL_ID.test(message.get('call-id') ?? '')) return 'bad Call-ID'
  if (parseCSeq(message.get('cseq') ?? '') === null) return 'bad CSeq'
  const contacts = message.getAll('contact').flatMap(listElements)
  if (!contacts.every((value) => (value === '*' && contacts.length === 1) || parseNameAddr(value) !== null)) return 'bad Contact'
  const date = message.get('date')
  if (date !== undefined && !DATE.test(date)) return 'bad Date'
  const expires = message.get('expires')
  if (expires !== undefined && !/^\d+$/.test(expires)) return 'bad Expires'
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
