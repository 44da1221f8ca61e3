// lib/entry.ts is what `require('fastify-sip-ws')` and every import of the package get; lib/index.ts is where
// exports are written. A value exported there and forgotten here would be missing for every user.
import assert from 'node:assert/strict'
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { after, before, describe, test } from 'node:test'
import { expectTypeOf } from 'expect-type'
import Fastify from 'fastify'
import ts from 'typescript'
import * as api from '../../lib'
import { reportedSetUp } from '../helpers/set-up'
import entry = require('../../lib/entry')

const ROOT = join(__dirname, '..', '..')

test('the entry point is the plugin, carrying every value lib/index.ts exports', () => {
  assert.equal(entry, api.sipWs)
  for (const [name, value] of Object.entries(api)) {
    assert.equal((entry as unknown as Record<string, unknown>)[name], value, `module.exports.${name}`)
  }
  const options: entry.SipWsOptions = { subProtocols: ['sip'] }
  assert.deepEqual(options.subProtocols, ['sip'])
})

test('the entry point names every type lib/index.ts exports', () => {
  const read = (file: string): string => readFileSync(join(ROOT, 'lib', file), 'utf8')
  const exported = [...read('index.ts').matchAll(/^export type \{([^}]*)\}/gm)].flatMap((m) => m[1].split(',').map((name) => name.trim()).filter((name) => name !== ''))
  assert.ok(exported.length > 20, `found ${exported.length} type exports`)
  const entry = read('entry.ts')
  const missing = exported.filter((name) => !entry.includes(`export type ${name} = api.${name}`))
  assert.deepEqual(missing, [], 'types exported by lib/index.ts that lib/entry.ts does not name')
})

/** Every .ts file under `dir`, relative to it. */
async function sourcesUnder (dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = []
  for (const item of await readdir(join(dir, prefix), { withFileTypes: true })) {
    const path = join(prefix, item.name)
    if (item.isDirectory()) out.push(...await sourcesUnder(dir, path))
    else if (item.name.endsWith('.ts')) out.push(path)
  }
  return out
}

/**
 * lib/ emitted as CommonJS by TypeScript, file by file with the repo's compiler options, into a scratch
 * directory laid out as the package is (package.json beside it, node_modules the repo's): what the package's dist holds, without a build. tsx loads a
 * .ts file for `import()` through its own hooks, not through Node's CommonJS export detection, so only
 * emitted JavaScript shows what an ES module importing the package gets.
 */
async function emitLib (): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sipws-entry-'))
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir')
  // Beside the emitted files as it is beside dist/: its "type" makes them CommonJS, and the code reads its version.
  await copyFile(join(ROOT, 'package.json'), join(dir, 'package.json'))
  const config = ts.readConfigFile(join(ROOT, 'tsconfig.json'), ts.sys.readFile)
  const { options } = ts.parseJsonConfigFileContent(config.config, ts.sys, ROOT)
  // The package is "type": "commonjs", so Node16 emits CommonJS for it; transpileModule cannot read that.
  const compilerOptions = { ...options, module: ts.ModuleKind.CommonJS, moduleResolution: ts.ModuleResolutionKind.Node10, declaration: false, sourceMap: false }
  const libDir = join(ROOT, 'lib')
  for (const file of await sourcesUnder(libDir)) {
    const { outputText, diagnostics } = ts.transpileModule(await readFile(join(libDir, file), 'utf8'), { compilerOptions, fileName: join(libDir, file), reportDiagnostics: true })
    assert.deepEqual(diagnostics?.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')) ?? [], [], file)
    const out = join(dir, 'lib', file.replace(/\.ts$/, '.js'))
    await mkdir(dirname(out), { recursive: true })
    await writeFile(out, outputText)
  }
  return dir
}

describe('lib/entry.ts as emitted JavaScript', () => {
  let dir = ''
  let entryFile = ''
  before(reportedSetUp(async () => {
    dir = await emitLib()
    entryFile = join(dir, 'lib', 'entry.js')
  }))
  after(async () => { if (dir !== '') await rm(dir, { recursive: true, force: true }) })

  test('require() gives the plugin itself, with default, sipWs, errors and LwscClient on it', () => {
    const required = require(entryFile) as typeof entry
    assert.equal(typeof required, 'function')
    assert.equal(required.default, required)
    assert.equal(required.sipWs, required)
    assert.equal(typeof required.LwscClient, 'function')
    assert.equal(new required.errors.BadConnectionIdError('wsClose', 'undefined').code, 'FST_SIPWS_BAD_CONNECTION_ID')
    assert.notEqual(required, entry, 'a module of its own, not the one tsx loaded')
  })

  test('import() from an ES module finds the same function as the default and as named exports', async () => {
    const required = require(entryFile) as typeof entry
    const imported = await import(pathToFileURL(entryFile).href) as Record<string, unknown>
    // Node from 23 on adds a 'module.exports' name of its own.
    assert.deepEqual(Object.keys(imported).filter((name) => name !== 'module.exports').sort(), ['LwscClient', 'default', 'errors', 'sipWs'])
    assert.equal(imported.default, required)
    assert.equal(imported.sipWs, required, 'a named import finds the plugin')
    assert.equal(imported.errors, required.errors)
    assert.equal(imported.LwscClient, required.LwscClient)
  })

  test('each form registers: the plugin decorates the app', async () => {
    const imported = await import(pathToFileURL(entryFile).href) as { default: typeof entry, sipWs: typeof entry }
    for (const plugin of [require(entryFile) as typeof entry, imported.default, imported.sipWs]) {
      const app = Fastify()
      await app.register(plugin, { subProtocols: ['sip'] })
      await app.ready()
      assert.equal(app.wsCloseAll(), 0)
      await app.close()
    }
  })
})

test('the types say what the values are', () => {
  expectTypeOf(entry.default).toEqualTypeOf(entry)
  expectTypeOf(entry.sipWs).toEqualTypeOf(entry)
  expectTypeOf(entry.errors).toEqualTypeOf(api.errors)
  expectTypeOf(entry.LwscClient).toEqualTypeOf(api.LwscClient)
  expectTypeOf<entry.WsMessage>().toEqualTypeOf<api.WsMessage>()
  expectTypeOf<entry.SipWsErrorCode>().toEqualTypeOf<api.SipWsErrorCode>()
})
