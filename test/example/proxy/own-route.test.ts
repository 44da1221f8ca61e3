import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { ConnectionLocal } from '../../../example/proxy/connection-local'
import { isOwnRoute, wsFacingRoute } from '../../../example/proxy/own-route'
import { parseNameAddr, parseUri, type SipUri } from '../../../example/sip/uri'

const LOCAL: ConnectionLocal = { localAddress: '127.0.0.1', localPort: 8080, host: 'Edge.Example:443', secure: false }

const uri = (text: string): SipUri => parseUri(text) ?? assert.fail(text)

test('the WebSocket-facing Record-Route names the local side and the transport, and is recognised as own', () => {
  assert.equal(wsFacingRoute(LOCAL), '<sip:127.0.0.1:8080;transport=ws;lr;r2=on>')
  const secure6: ConnectionLocal = { localAddress: '::1', localPort: 8443, secure: true }
  assert.equal(wsFacingRoute(secure6), '<sip:[::1]:8443;transport=wss;lr;r2=on>')
  for (const local of [LOCAL, secure6]) {
    const route = parseNameAddr(wsFacingRoute(local))
    assert.ok(route !== null)
    assert.equal(isOwnRoute(uri(route.uri), local), true)
  }
})

test('a loose route to the local address or to the Host name, with no port or the local one, is own', () => {
  for (const text of ['sip:127.0.0.1;lr', 'sip:127.0.0.1:8080;transport=ws;lr', 'sip:edge.example;lr', 'sip:EDGE.example:8080;lr', 'sip:tok@127.0.0.1:8080;lr']) {
    assert.equal(isOwnRoute(uri(text), LOCAL), true, text)
  }
})

test('a strict route, another host, another port, or no known connection is not own', () => {
  for (const text of ['sip:127.0.0.1:8080', 'sip:127.0.0.2;lr', 'sip:127.0.0.1:5060;lr', 'sip:edge.example:443;lr', 'sip:core.example;lr']) {
    assert.equal(isOwnRoute(uri(text), LOCAL), false, text)
  }
  assert.equal(isOwnRoute(uri('sip:127.0.0.1:8080;lr'), undefined), false)
  assert.equal(isOwnRoute(uri('sip:[::1]:8443;lr'), { localAddress: '::1', localPort: 8443 }), true, 'IPv6 in brackets names the bare address')
})
