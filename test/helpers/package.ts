// The package as users get it: packed, installed into a scratch project, its README examples run there.
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import WebSocket from 'ws'
import { within } from './pool'

export const ROOT = join(__dirname, '..', '..')
export const run = promisify(execFile)

/** npm's own variables of the `npm test` run (its package, its lifecycle) must not leak into the scratch installs. */
export function npmEnv (): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_(package|lifecycle)_/i.test(key)))
}

/** The first ts code block under a README heading (`## Quick start`, say). */
export async function readmeBlock (heading: string): Promise<string> {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8')
  const at = readme.indexOf(`\n${heading}\n`)
  assert.notEqual(at, -1, `README has a "${heading}" heading`)
  const code = /```ts\n([\s\S]*?)```/.exec(readme.slice(at))?.[1]
  assert.ok(code !== undefined, `README has a ts block under "${heading}"`)
  return code
}

/**
 * A scratch project holding the packed package: `npm pack` of the built repo, then `npm install` of the
 * tarball and `dependencies` (name@version specs) beside it. `fresh` resolves as a new user's install
 * does: no lockfile, registry metadata revalidated, so every range gives its newest version today.
 * Otherwise npm's cache serves what it has (an offline machine after `npm ci`, with pinned specs).
 */
export async function scratchInstall (prefix: string, dependencies: string[], options: { fresh: boolean }): Promise<string> {
  const scratch = await mkdtemp(join(tmpdir(), prefix))
  const { stdout } = await run('npm', ['pack', '--pack-destination', scratch, '--silent'], { cwd: ROOT, env: npmEnv(), timeout: 60_000 })
  const tarball = join(scratch, stdout.trim().split('\n').pop() as string)
  await writeFile(join(scratch, 'package.json'), JSON.stringify({ name: 'scratch', private: true, version: '0.0.0' }))
  const resolution = options.fresh ? ['--prefer-online', '--no-package-lock'] : ['--prefer-offline']
  await run('npm', ['install', ...resolution, '--no-audit', '--no-fund', '--loglevel=error', tarball, ...dependencies], { cwd: scratch, env: npmEnv(), timeout: 180_000 })
    .catch((err: Error & { stderr?: string }) => { throw new Error(`npm install in ${scratch} failed:\n${err.stderr ?? err.message}`) })
  return scratch
}

/**
 * Fails, saying why, unless the npm registry answers: a fresh install cannot come from a cache. `registry`
 * defaults to npm's configured one.
 */
export async function requireRegistry (registry?: string): Promise<void> {
  const url = registry ?? (await run('npm', ['config', 'get', 'registry'], { env: npmEnv(), timeout: 30_000 })).stdout.trim()
  try {
    await run('npm', ['ping', '--registry', url, '--fetch-retries=0', '--fetch-timeout=20000'], { env: npmEnv(), timeout: 30_000 })
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? ''
    const reason = /^npm error (FetchError: .*|code .*)$/m.exec(stderr)?.[1] ?? (err as Error).message
    throw new Error(`the npm registry ${url} did not answer (${reason}). This test installs the packed package with no lockfile, ` +
      'as a new user does, so it needs the registry: run it where that is reachable, or set npm\'s registry to a mirror (npm config set registry <url>)')
  }
}

const OPTIONS_PING = 'OPTIONS sip:edge SIP/2.0\r\nVia: SIP/2.0/WSS a.invalid;branch=z9hG4bK1\r\nFrom: <sip:alice@example.com>;tag=1\r\n' +
  'To: <sip:edge>\r\nCall-ID: quick-start-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n'

/**
 * Runs the README quick start (`entry`, built from it) on a free port and talks to it as a phone would:
 * its OPTIONS gets 200 OK with the request's Call-ID and CSeq, and a page from another origin gets 403.
 */
export async function assertQuickStartServes (dir: string, entry: string): Promise<void> {
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
    phone.send(OPTIONS_PING)
    const [options] = await within(answer, 10_000, () => 'no answer to OPTIONS')
    phone.close()
    assert.match(options.toString(), /^SIP\/2\.0 200 OK\r\n/)
    assert.match(options.toString(), /\r\nCall-ID: quick-start-1\r\n/)
    assert.match(options.toString(), /\r\nCSeq: 1 OPTIONS\r\n/)

    const stranger = new WebSocket(url, 'sip', { origin: 'https://elsewhere.example' })
    // Ended by terminate() below while still connecting, which ws reports as an error.
    stranger.on('error', () => {})
    const refused = await within(new Promise<number>((resolve, reject) => {
      stranger.once('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); res.resume() })
      stranger.once('open', () => { reject(new Error('a stranger got in')) })
    }), 10_000, () => 'no answer to the stranger')
    stranger.terminate()
    assert.equal(refused, 403)
  } finally {
    child.kill('SIGTERM')
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit')
  }
}
