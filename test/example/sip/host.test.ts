import assert from 'node:assert/strict'
import { test } from 'node:test'
import { bareHost, formatHost, parseHostPort, sameHost, isGroupAddress } from '../../../example/sip/host'

test('formatHost', () => {
  assert.equal(formatHost('::1'), '[::1]')
  assert.equal(formatHost('127.0.0.1'), '127.0.0.1')
  assert.equal(formatHost('[::1]'), '[::1]', 'already in brackets')
  assert.equal(formatHost('edge.example.com'), 'edge.example.com')
})

test('parseHostPort: names, IPv4, bracketed IPv6, with and without a port', () => {
  assert.deepEqual(parseHostPort('edge.example.com'), { host: 'edge.example.com', port: null })
  assert.deepEqual(parseHostPort('10.0.0.1:5060'), { host: '10.0.0.1', port: 5060 })
  assert.deepEqual(parseHostPort('[2001:db8::1]'), { host: '[2001:db8::1]', port: null })
  assert.deepEqual(parseHostPort('[2001:db8::1]:5061'), { host: '[2001:db8::1]', port: 5061 })
  for (const bad of ['', 'a:b', 'x:65536', 'x:123456', '2001:db8::1', 'a b', '[::1]x']) assert.equal(parseHostPort(bad), null, bad)
})

test('bareHost and sameHost: brackets and case aside', () => {
  assert.equal(bareHost('[::1]'), '::1')
  assert.equal(bareHost('::1'), '::1')
  assert.equal(bareHost('Example.COM'), 'Example.COM')
  assert.equal(sameHost('[::1]', '::1'), true)
  assert.equal(sameHost('Edge.Example.com', 'edge.example.COM'), true)
  assert.equal(sameHost('[2001:DB8::1]', '2001:db8::1'), true)
  assert.equal(sameHost('127.0.0.1', '127.0.0.2'), false)
})

test('isGroupAddress: broadcast and multicast, IPv4 and IPv6; not a unicast address', () => {
  for (const group of ['255.255.255.255', '224.0.0.1', '239.255.255.250', 'ff02::1', '[FF05::2]']) assert.equal(isGroupAddress(group), true, group)
  for (const one of ['192.0.2.198', '127.0.0.1', '::1', '[2001:db8::1]', 'fe80::1', 'ffhost.example']) assert.equal(isGroupAddress(one), false, one)
})
