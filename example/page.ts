import type { FastifyInstance } from 'fastify'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { browserBundle } from './browser-bundle'

const PUBLIC = join(__dirname, 'public')

// The page loads nothing from elsewhere; the WebSocket goes back to the host that served it.
export const PAGE_HEADERS = {
  'content-security-policy': "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-cache'
}

/**
 * The chat page at `/`: `public/index.html`, `style.css`, and `app.js` bundled with JsSIP. A GET without
 * Upgrade on the WebSocket path reaches these routes (see the plugin's README).
 */
export async function servePage (app: FastifyInstance): Promise<void> {
  const [indexHtml, styleCss] = await Promise.all([
    readFile(join(PUBLIC, 'index.html'), 'utf8'),
    readFile(join(PUBLIC, 'style.css'), 'utf8')
  ])
  app.get('/', async (_request, reply) => await reply.headers(PAGE_HEADERS).type('text/html; charset=utf-8').send(indexHtml))
  app.get('/style.css', async (_request, reply) => await reply.headers(PAGE_HEADERS).type('text/css; charset=utf-8').send(styleCss))
  app.get('/app.js', async (_request, reply) => await reply.headers(PAGE_HEADERS).type('text/javascript; charset=utf-8').send(await browserBundle()))
}
