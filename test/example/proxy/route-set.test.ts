import assert from 'node:assert/strict'
import { test } from 'node:test'
import { takeOwnRoutes, toStrictNextHop } from '../../../example/proxy/route-set'
import { splitList } from '../../../example/sip/headers'
import { SipRequest } from '../../../example/sip/message'
import { parseSip } from '../../../example/sip/parse'
import type { SipUri } from '../../../example/sip/uri'

const request = (uri: string, ...routes: string[]): SipRequest => {
  const message = parseSip([`BYE ${uri} SIP/2.0`, ...routes.map((r) => `Route: ${r}`), 'l: 0', '', ''].join('\r\n'))
  assert.ok(message instanceof SipRequest)
  return message
}
const routes = (message: SipRequest): string[] => message.getAll('route').flatMap(splitList)
/** The edge of these tests: any URI on host edge.example. */
const own = (uri: SipUri): boolean => uri.host === 'edge.example'

test('takeOwnRoutes: the routes naming this proxy at the top go, however many lines they are on; the others stay', () => {
  const message = request('sip:bob@phone.example', '<sip:TOKEN@edge.example;lr;r2=on>, <sip:edge.example;transport=ws;lr;r2=on>', '<sip:core.example;lr>, <sip:edge.example;lr>')
  const taken = takeOwnRoutes(message, own)
  assert.deepEqual(taken.map((uri) => uri.user), ['TOKEN', null])
  assert.deepEqual(routes(message), ['<sip:core.example;lr>, <sip:edge.example;lr>'].flatMap(splitList), 'a route of ours below another hop is not ours to take')
  assert.equal(message.uri, 'sip:bob@phone.example')
})

test('takeOwnRoutes: a Request-URI of ours came from a strict router; the last Route is the real target (RFC 3261 §16.4, §16.12.1.2)', () => {
  const message = request('sip:TOKEN@edge.example;lr', '<sip:next.example>', '<sip:bob@phone.example;transport=ws>')
  const taken = takeOwnRoutes(message, own)
  assert.deepEqual(taken.map((uri) => uri.user), ['TOKEN'])
  assert.equal(message.uri, 'sip:bob@phone.example;transport=ws')
  assert.deepEqual(routes(message), ['<sip:next.example>'])
  const alone = request('sip:edge.example')
  assert.deepEqual(takeOwnRoutes(alone, own), [], 'with no Route it is simply for us')
  assert.equal(alone.uri, 'sip:edge.example')
})

test('toStrictNextHop: a next hop without lr gets the Request-URI as the last Route, and its own URI as the Request-URI (RFC 3261 §16.6 step 6)', () => {
  const strict = request('sip:bob@phone.example', '<sip:strict.example;transport=udp>, <sip:after.example;lr>')
  toStrictNextHop(strict)
  assert.equal(strict.uri, 'sip:strict.example;transport=udp')
  assert.deepEqual(routes(strict), ['<sip:after.example;lr>', '<sip:bob@phone.example>'])
  const last = request('sip:bob@phone.example', '<sip:strict.example>')
  toStrictNextHop(last)
  assert.equal(last.uri, 'sip:strict.example')
  assert.deepEqual(routes(last), ['<sip:bob@phone.example>'])
  const loose = request('sip:bob@phone.example', '<sip:loose.example;lr>')
  toStrictNextHop(loose)
  assert.equal(loose.uri, 'sip:bob@phone.example')
  assert.deepEqual(routes(loose), ['<sip:loose.example;lr>'])
})
