import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { test } from 'node:test'
import { BROWSER_ENTRY, browserBundle } from '../../example/browser-bundle'

test('public/app.js bundled with JsSIP for browsers: one script, no require left; built once per process', async () => {
  assert.ok(existsSync(BROWSER_ENTRY))
  const [first, second] = await Promise.all([browserBundle(), browserBundle()])
  assert.equal(first, second)
  assert.ok(first.length > 100_000, `${first.length} bytes`)
  assert.match(first, /JsSIP/)
  assert.doesNotMatch(first, /\brequire\(["']jssip["']\)/)
  assert.equal(await browserBundle(), first)
  // It parses as a script.
  assert.doesNotThrow(() => { new Function(first) }) // eslint-disable-line no-new, no-new-func
})
