// `npm test` on a machine without the Debian packages the suite runs against fails here first, with the
// command that installs them, rather than somewhere deep in an interop or browser test.
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { DEBIAN_PACKAGES, installCommand, missingPackages } from '../helpers/system-packages'

test('the Debian packages the suite needs are installed', () => {
  const missing = missingPackages()
  assert.deepEqual(missing, [], `missing Debian packages: ${missing.join(', ')}. Install them: ${installCommand(missing)}`)
})

test('the list is what .ci/run installs, and a package nobody has is reported missing', async () => {
  assert.ok(DEBIAN_PACKAGES.includes('kamailio-websocket-modules') && DEBIAN_PACKAGES.includes('chromium') && DEBIAN_PACKAGES.includes('redis-server') && DEBIAN_PACKAGES.includes('sip-tester'))
  const script = await readFile(join(__dirname, '../../.ci/run'), 'utf8')
  assert.match(script, /done < \.ci\/debian-packages\n/)
  assert.match(script, /\nnpm test\n$/, '.ci/run ends by running npm test')
  assert.deepEqual(missingPackages(['openssl', 'no-such-package-fastify-sip-ws']), ['no-such-package-fastify-sip-ws'])
  assert.match(installCommand(['chromium']), /^sudo apt-get update && sudo apt-get install -y chromium \(or npm run test:all/)
})
