// The package on the day a new user installs it: the packed tarball into a scratch project with no
// lockfile, so every range of ours (and the fastify 5.x peer) gives its newest release today, where CI's
// `npm ci` gives the lockfile's. The README's quick start and injectWS example are type checked and run
// there. Needs the npm registry, and `npm run build` first (npm test does it).
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { assertQuickStartServes, npmEnv, readmeBlock, requireRegistry, run, scratchInstall } from '../helpers/package'
import { reportedSetUp } from '../helpers/set-up'

const NODE_MAJOR = process.versions.node.split('.')[0]
// What a new TypeScript user of this Node adds beside the package.
const DEPENDENCIES = ['fastify@5.x', 'typescript', `@types/node@${NODE_MAJOR}`]
const TSCONFIG = { strict: true, skipLibCheck: false, target: 'ES2022', module: 'nodenext', moduleResolution: 'nodenext', types: ['node'], outDir: 'out', rootDir: '.' }

/** The version of `name` that `from` (a directory in node_modules) resolves, as Node would. */
async function resolvedVersion (from: string, name: string): Promise<string> {
  const file = require.resolve(`${name}/package.json`, { paths: [from] })
  return (JSON.parse(await readFile(file, 'utf8')) as { version: string }).version
}

describe('the packed package on a fresh install: no lockfile, the newest releases its ranges allow', () => {
  let scratch = ''

  before(reportedSetUp(async () => {
    await requireRegistry()
    scratch = await scratchInstall('fastify-sip-ws-fresh-', DEPENDENCIES, { fresh: true })
    // ES modules (.mts), as the examples' top-level await and imports want.
    await writeFile(join(scratch, 'quick-start.mts'), await readmeBlock('## Quick start'))
    await writeFile(join(scratch, 'inject.test.mts'), await readmeBlock('## Testing with injectWS'))
    await writeFile(join(scratch, 'tsconfig.json'), JSON.stringify({ compilerOptions: TSCONFIG, include: ['*.mts'] }))
    const tsc = join(scratch, 'node_modules/typescript/bin/tsc')
    await run(process.execPath, [tsc, '-p', scratch], { cwd: scratch, timeout: 120_000 }).catch((err: { stdout?: string }) => {
      throw new Error(`the README examples do not type-check on a fresh install:\n${err.stdout ?? String(err)}`)
    })
  }))

  after(async () => {
    if (scratch !== '') await rm(scratch, { recursive: true, force: true })
  })

  test('npm finds every range and peer range satisfied; ws is the version the package pins', async (t) => {
    await run('npm', ['ls', '--all'], { cwd: scratch, env: npmEnv(), timeout: 60_000 }).catch((err: { stdout?: string, stderr?: string }) => {
      assert.fail(`npm ls found problems:\n${err.stderr ?? ''}${err.stdout ?? ''}`)
    })
    const pkg = join(scratch, 'node_modules/fastify-sip-ws')
    const declared = (JSON.parse(await readFile(join(pkg, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies
    const versions = Object.fromEntries(await Promise.all(['ws', '@fastify/websocket', 'fastify', 'typescript'].map(async (name) => [name, await resolvedVersion(pkg, name)])))
    t.diagnostic(`resolved: ${JSON.stringify(versions)}`)
    assert.equal(versions.ws, declared.ws)
    // @fastify/websocket's own ws is the same copy: one ws in the tree, not two.
    assert.equal(await resolvedVersion(join(scratch, 'node_modules/@fastify/websocket'), 'ws'), declared.ws)
  })

  test('the README quick start runs: a phone gets 200 OK to OPTIONS, another origin 403', async () => {
    await assertQuickStartServes(scratch, join(scratch, 'out/quick-start.mjs'))
  })

  test("the README's injectWS example passes under node --test", async () => {
    // Run as a run of its own, not as a subtest of this one.
    const env = Object.fromEntries(Object.entries(npmEnv()).filter(([key]) => key !== 'NODE_TEST_CONTEXT'))
    const { stdout } = await run(process.execPath, ['--test', '--test-reporter=tap', join(scratch, 'out/inject.test.mjs')], { cwd: scratch, env, timeout: 60_000 })
      .catch((err: { stdout?: string, stderr?: string }) => assert.fail(`the injectWS example failed:\n${err.stdout ?? ''}${err.stderr ?? ''}`))
    assert.match(stdout, /^# pass [1-9]\d*$/m)
    assert.match(stdout, /^# fail 0$/m)
  })
})

describe('the fresh install, where the registry does not answer', () => {
  test('fails with a message naming the registry and what the test needs it for', async () => {
    // A port that was free a moment ago: connecting to it is refused.
    const server = createServer().listen(0, '127.0.0.1')
    await once(server, 'listening')
    const { port } = server.address() as { port: number }
    server.close()
    await once(server, 'close')
    const registry = `http://127.0.0.1:${port}/`
    await assert.rejects(requireRegistry(registry), (err: Error) => {
      assert.match(err.message, new RegExp(`^the npm registry ${registry.replace(/[.]/g, '\\.')} did not answer \\(.*ECONNREFUSED.*\\)\\. `))
      assert.match(err.message, /installs the packed package with no lockfile, as a new user does, so it needs the registry/)
      return true
    })
  })
})
