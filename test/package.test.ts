// The package as users get it: `npm pack`, the tarball installed into scratch projects, the README's quick
// start compiled and run in each module setup. Needs `npm run build` first (npm test does it).
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { promisify } from 'node:util'
import WebSocket from 'ws'
import { within } from './helpers/pool'
import { reportedSetUp } from './helpers/set-up'

const ROOT = join(__dirname, '..')
const run = promisify(execFile)
// Pinned to what the repo's lockfile has, so an offline machine installs from npm's cache.
const SCRATCH_DEPENDENCIES = ['fastify@5.12.8', 'typescript@5.9.3', '@types/node@20.19.43']

/** npm's own variables of the `npm test` run (its package, its lifecycle) must not leak into the scratch installs. */
function npmEnv (): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_(package|lifecycle)_/i.test(key)))
}

/** The README's quick start: the code block under "## Quick start". */
async function quickStart (): Promise<{ imports: string[], body: string }> {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('## Quick start'))
  const code = /```ts\n([\s\S]*?)```/.exec(section)?.[1]
  assert.ok(code !== undefined, 'README has a ts block under "## Quick start"')
  const lines = code.split('\n')
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
void onMessage
void options
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
import sipWs, { sipWs as named, errors, LwscClient, type SipWsOptions, type WsMessage } from 'fastify-sip-ws'
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
import sipWs, { sipWs as named, errors, LwscClient, type SipWsOptions, type WsMessage } from 'fastify-sip-ws'
const required = createRequire(import.meta.url)('fastify-sip-ws') as typeof sipWs
${TS_TYPES}
${SHARED_CHECKS}
${REGISTER_EACH}`
  }
]

/** Runs the quick start on a free port and talks to it as a phone would; resolves with what it saw. */
async function runQuickStart (dir: string, entry: string): Promise<{ options: string, refused: number }> {
  const child = spawn(process.execPath, [entry], { cwd: dir, env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  try {
    const url = await within(new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString()
        const match = /"msg":"Server listening at (http:\/\/127\.0\.0\.1:\d+)"/.exec(output)
        if (match !== null) resolve(match[1].replace('http:', 'ws:'))
      })
      child.once('exit', (code) => { reject(new Error(`exited with ${String(code)}`)) })
    }), 20_000, () => `the quick start did not listen:\n${output}`)

    const phone = new WebSocket(url, 'sip', { origin: 'https://phone.example.com' })
    await within(once(phone, 'open'), 10_000, () => 'the phone could not connect')
    const answer = once(phone, 'message') as Promise<[Buffer]>
    phone.send('OPTIONS sip:edge SIP/2.0\r\nVia: SIP/2.0/WSS a.invalid;branch=z9hG4bK1\r\nFrom: <sip:alice@example.com>;tag=1\r\nTo: <sip:edge>\r\nCall-ID: quick-start-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n')
    const [options] = await within(answer, 10_000, () => 'no answer to OPTIONS')
    phone.close()

    const stranger = new WebSocket(url, 'sip', { origin: 'https://elsewhere.example' })
    // Ended by terminate() below while still connecting, which ws reports as an error.
    stranger.on('error', () => {})
    const refused = await within(new Promise<number>((resolve, reject) => {
      stranger.once('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); res.resume() })
      stranger.once('open', () => { reject(new Error('a stranger got in')) })
    }), 10_000, () => 'no answer to the stranger')
    stranger.terminate()
    return { options: options.toString(), refused }
  } finally {
    child.kill('SIGTERM')
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit')
  }
}

// The setups run at once: the two type checks (strict, skipLibCheck off: about 15 s of CPU each) take both cores.
describe('the packed package, installed as users install it', { concurrency: true }, () => {
  let scratch = ''

  before(reportedSetUp(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'fastify-sip-ws-pack-'))
    const { stdout } = await run('npm', ['pack', '--pack-destination', scratch, '--silent'], { cwd: ROOT, env: npmEnv(), timeout: 60_000 })
    const tarball = join(scratch, stdout.trim().split('\n').pop() as string)
    await writeFile(join(scratch, 'package.json'), JSON.stringify({ name: 'scratch', private: true, version: '0.0.0' }))
    // From npm's cache when it has everything (an offline machine after `npm ci`), the registry otherwise.
    await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarball, ...SCRATCH_DEPENDENCIES], { cwd: scratch, env: npmEnv(), timeout: 90_000 })
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
      const { options, refused } = await runQuickStart(dir, join(out, 'quick-start.js'))
      assert.match(options, /^SIP\/2\.0 200 OK\r\n/)
      assert.match(options, /\r\nCall-ID: quick-start-1\r\n/)
      assert.match(options, /\r\nCSeq: 1 OPTIONS\r\n/)
      assert.equal(refused, 403)
    })
  }
})
