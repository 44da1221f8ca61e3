// lib/entry.ts is what `require('fastify-sip-ws')` and every import of the package get; lib/index.ts is where
// exports are written. A value exported there and forgotten here would be missing for every user.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import * as api from '../lib'
import entry = require('../lib/entry')

test('the entry point is the plugin, carrying every value lib/index.ts exports', () => {
  assert.equal(entry, api.sipWs)
  for (const [name, value] of Object.entries(api)) {
    assert.equal((entry as unknown as Record<string, unknown>)[name], value, `module.exports.${name}`)
  }
  const options: entry.SipWsOptions = { subProtocols: ['sip'] }
  assert.deepEqual(options.subProtocols, ['sip'])
})
