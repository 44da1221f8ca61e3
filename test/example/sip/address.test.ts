import assert from 'node:assert/strict'
import { test } from 'node:test'
import { formatSipAddress, hostPort, parseSipAddress } from '../../../example/sip/address'

test('parseSipAddress: udp or tcp, an IP literal (IPv6 in brackets) and a port; the format round-trips', () => {
  assert.deepEqual(parseSipAddress('udp:127.0.0.1:5060', 'X'), { transport: 'udp', host: '127.0.0.1', port: 5060 })
  assert.deepEqual(parseSipAddress(' TCP:[::1]:5070 ', 'X'), { transport: 'tcp', host: '::1', port: 5070 })
  for (const text of ['udp:127.0.0.1:5060', 'tcp:[::1]:0', 'tcp:[2001:db8::1]:65535']) assert.equal(formatSipAddress(parseSipAddress(text, 'X')), text)
})

test('parseSipAddress names the setting and what it wanted', () => {
  for (const bad of ['127.0.0.1:5060', 'tls:127.0.0.1:5061', 'udp:core.example:5060', 'udp:127.0.0.1:70000', 'udp:::1:5060', 'udp:127.0.0.1']) {
    assert.throws(() => parseSipAddress(bad, 'sipCore (SIP_CORE)'), new RegExp(`^Error: sipCore \\(SIP_CORE\\) must be udp:IP:PORT or tcp:IP:PORT \\(e\\.g\\. udp:127\\.0\\.0\\.1:5060\\), got ${JSON.stringify(bad).replace(/[.[\]]/g, '\\$&')}$`), bad)
  }
})

test('hostPort: the host:port of a Via sent-by or URI', () => {
  assert.equal(hostPort({ host: '127.0.0.1', port: 5070 }), '127.0.0.1:5070')
  assert.equal(hostPort({ host: '::1', port: 8080 }), '[::1]:8080')
})
