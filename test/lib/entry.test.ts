// lib/entry.ts is what `require('fastify-sip-ws')` and every import of the package get; lib/index.ts is where
// exports are written. A value exported there and forgotten here would be missing for every user.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import * as api from '../../lib'
import entry = require('../../lib/entry')

test('the entry point is the plugin, carrying every value lib/index.ts exports', () => {
  assert.equal(entry, api.sipWs)
  for (const [name, value] of Object.entries(api)) {
    assert.equal((entry as unknown as Record<string, unknown>)[name], value, `module.exports.${name}`)
  }
  const options: entry.SipWsOptions = { subProtocols: ['sip'] }
  assert.deepEqual(options.subProtocols, ['sip'])
})

test('the entry point names every type lib/index.ts exports', () => {
  const read = (file: string): string => readFileSync(join(__dirname, '..', '..', 'lib', file), 'utf8')
  const exported = [...read('index.ts').matchAll(/^export type \{([^}]*)\}/gm)].flatMap((m) => m[1].split(',').map((name) => name.trim()).filter((name) => name !== ''))
  assert.ok(exported.length > 20, `found ${exported.length} type exports`)
  const entry = read('entry.ts')
  const missing = exported.filter((name) => !entry.includes(`export type ${name} = api.${name}`))
  assert.deepEqual(missing, [], 'types exported by lib/index.ts that lib/entry.ts does not name')
})
