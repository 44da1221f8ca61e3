import { build } from 'esbuild'
import { join } from 'node:path'

/** The page's script: `public/app.js` with JsSIP bundled in, for browsers. */
export const BROWSER_ENTRY = join(__dirname, 'public', 'app.js')

let pending: Promise<string> | undefined

/**
 * The jssip package ships CommonJS for Node only, so the page's script is bundled here, in memory, the
 * first time it is asked for (a few hundred milliseconds, once per process). Doing it at run time keeps
 * `npm install && npm run example` the whole setup, with no build step or build output to go stale.
 */
export async function browserBundle (): Promise<string> {
  pending ??= build({
    entryPoints: [BROWSER_ENTRY],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    target: ['es2020'],
    minify: true,
    legalComments: 'inline',
    logLevel: 'silent',
    // `debug` (a JsSIP dependency) reads process.env.DEBUG when it finds one.
    define: { 'process.env.NODE_ENV': '"production"' }
  }).then((result) => result.outputFiles[0].text)
  // A failed build is retried on the next request rather than cached for the life of the process.
  pending.catch(() => { pending = undefined })
  return await pending
}
