// The package as users get it: `npm pack`, the tarball installed into scratch projects, the README's quick
// start compiled and run in each module setup, on the lockfile's versions (fresh-install.test.ts takes the
// newest instead). Needs `npm run build` first (npm test does it).
import assert from 'node:assert/strict'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { assertQuickStartServes, readmeBlock, run, scratchInstall } from '../helpers/package'
import { reportedSetUp } from '../helpers/set-up'

// Pinned to what the repo's lockfile has, so an offline machine installs from npm's cache.
const SCRATCH_DEPENDENCIES = ['fastify@5.12.8', 'typescript@5.9.3', '@types/node@20.19.43']

/** The README's quick start, its imports apart from the rest. */
async function quickStart (): Promise<{ imports: string[], body: string }> {
  const lines = (await readmeBlock('## Quick start')).split('\n')
  return { imports: lines.filter((l) => l.startsWith('import ')), body: lines.filter((l) => !l.startsWith('import ')).join('\n') }
}

// Top-level await needs an ES module; CommonJS runs the same lines in an async function.
const inMain = (body: string): string => `async function main () {\n${body}\n}\nvoid main()\n`
const toRequire = (line: string): string => line.replace(/^import (\w+) from ('[^']+')$/, 'const $1 = require($2)')

const SHARED_CHECKS = `
assert.equal(typeof sipWs, 'function')
assert.equal(named, sipWs)
assert.equal(required, sipWs)
assert.equal(sipWs.default, sipWs)
assert.equal(new errors.BadConnectionIdError('wsClose', 'undefined').statusCode, 400)
const client = new LwscClient()
assert.ok(client instanceof LwscClient)
`
// The same plugin, registered through each form, gets its decorators.
const REGISTER_EACH = `
for (const plugin of [sipWs, named, required]) {
  const app = Fastify()
  await app.register(plugin, { subProtocols: ['sip'] })
  assert.equal(app.wsCloseAll(), 0)
  await app.close()
}
await client.close()
process.stdout.write('forms ok\\n')
`
const TS_TYPES = `
const options: SipWsOptions = { subProtocols: ['sip'], lwsc: { idleTimeout: 30000 } }
const onMessage = (msg: WsMessage): string => msg.binary ? msg.data.toString('hex') : msg.data.toUpperCase()
const code: SipWsErrorCode = new errors.LwscClosedError('ws://edge/').code
const failedUrl = (err: unknown): string | undefined => err instanceof errors.LwscReadTimeoutError ? err.url : undefined
void onMessage
void options
void code
void failedUrl
`

interface Setup {
  name: string
  packageType: 'commonjs' | 'module'
  tsconfig?: Record<string, unknown>
  quickStart: (q: { imports: string[], body: string }) => string
  forms: string
}

const STRICT = { strict: true, skipLibCheck: false, target: 'ES2022', types: ['node'], outDir: 'out', rootDir: '.' }

const SETUPS: Setup[] = [
  {
    name: 'CommonJS',
    packageType: 'commonjs',
    quickStart: ({ imports, body }) => imports.map(toRequire).join('\n') + '\n' + inMain(body),
    forms: `const assert = require('node:assert/strict')
const Fastify = require('fastify')
const sipWs = require('fastify-sip-ws')
const { sipWs: named, errors, LwscClient } = require('fastify-sip-ws')
const required = sipWs
${SHARED_CHECKS}
${inMain(REGISTER_EACH)}`
  },
  {
    name: 'Node ESM',
    packageType: 'module',
    quickStart: ({ imports, body }) => imports.join('\n') + '\n' + body,
    forms: `import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import Fastify from 'fastify'
import sipWs, { sipWs as named, errors, LwscClient } from 'fastify-sip-ws'
const required = createRequire(import.meta.url)('fastify-sip-ws')
${SHARED_CHECKS}
${REGISTER_EACH}`
  },
  {
    name: 'TypeScript, module commonjs',
    packageType: 'commonjs',
    tsconfig: { ...STRICT, module: 'commonjs', moduleResolution: 'node10', esModuleInterop: true },
    quickStart: ({ imports, body }) => imports.join('\n') + '\n' + inMain(body),
    forms: `import assert from 'node:assert/strict'
import Fastify from 'fastify'
import sipWs, { sipWs as named, errors, LwscClient, type SipWsOptions, type WsMessage, type SipWsErrorCode } from 'fastify-sip-ws'
import required = require('fastify-sip-ws')
${TS_TYPES}
${SHARED_CHECKS}
${inMain(REGISTER_EACH)}`
  },
  {
    name: 'TypeScript, module nodenext',
    packageType: 'module',
    tsconfig: { ...STRICT, module: 'nodenext', moduleResolution: 'nodenext' },
    quickStart: ({ imports, body }) => imports.join('\n') + '\n' + body,
    forms: `import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import Fastify from 'fastify'
import sipWs, { sipWs as named, errors, LwscClient, type SipWsOptions, type WsMessage, type SipWsErrorCode } from 'fastify-sip-ws'
const required = createRequire(import.meta.url)('fastify-sip-ws') as typeof sipWs
${TS_TYPES}
${SHARED_CHECKS}
${REGISTER_EACH}`
  }
]

// The setups run at once: the two type checks (strict, skipLibCheck off: about 15 s of CPU each) take both cores.
describe('the packed package, installed as users install it', { concurrency: true }, () => {
  let scratch = ''

  before(reportedSetUp(async () => {
    scratch = await scratchInstall('fastify-sip-ws-pack-', SCRATCH_DEPENDENCIES, { fresh: false })
  }))

  after(async () => {
    if (scratch !== '') await rm(scratch, { recursive: true, force: true })
  })

  test('dependencies: everything the public declarations import is installed with the package', async () => {
    const installed = JSON.parse(await readFile(join(scratch, 'node_modules/fastify-sip-ws/package.json'), 'utf8')) as { dependencies: Record<string, string> }
    assert.ok('@types/ws' in installed.dependencies, 'public types import ws')
    assert.match(installed.dependencies.ws, /^\d+\.\d+\.\d+$/, 'ws is pinned to one version')
    assert.match(installed.dependencies['@fastify/websocket'], /^\^11\./)
  })

  const q = quickStart()
  for (const setup of SETUPS) {
    test(`${setup.name}: the README quick start compiles and runs; require, default and named forms are one plugin`, async () => {
      const dir = join(scratch, setup.name.replace(/\W+/g, '-').toLowerCase())
      await mkdir(dir)
      await writeFile(join(dir, 'package.json'), JSON.stringify({ type: setup.packageType }))
      const ext = setup.tsconfig === undefined ? 'js' : 'ts'
      await writeFile(join(dir, `quick-start.${ext}`), setup.quickStart(await q))
      await writeFile(join(dir, `forms.${ext}`), setup.forms)
      let out = dir
      if (setup.tsconfig !== undefined) {
        await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: setup.tsconfig, include: ['*.ts'] }))
        const tsc = join(scratch, 'node_modules/typescript/bin/tsc')
        await run(process.execPath, [tsc, '-p', dir], { cwd: dir, timeout: 90_000 }).catch((err: { stdout?: string }) => {
          assert.fail(`tsc failed:\n${err.stdout ?? String(err)}`)
        })
        out = join(dir, 'out')
      }
      const forms = await run(process.execPath, [join(out, 'forms.js')], { cwd: dir, timeout: 30_000 })
      assert.equal(forms.stdout, 'forms ok\n')
      await assertQuickStartServes(dir, join(out, 'quick-start.js'))
    })
  }
})
