import assert from 'node:assert/strict'
import { EventEmitter, once } from 'node:events'
import { after, before, describe, test } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Browser, Page } from 'playwright-core'
import type WebSocket from 'ws'
import { assertChromium, hasChromium, launchChromium } from '../helpers/chromium'
import { connect, startApp } from '../helpers/server'
import { handshakeStatus, startExample, within, type Example } from './helpers'
import { reportedSetUp } from '../helpers/set-up'

// Chromium resolves this name to 127.0.0.1 itself, so a page can be cross-site without DNS.
const EVIL = 'evil.test'

interface Answered { url: string, method: string, status: number, origin?: string, site?: string }

/** The answers an app gave on its RPC path, as they are sent; `until(n)` waits for the n-th. */
class RpcAnswers extends EventEmitter {
  readonly list: Answered[] = []

  watch (app: FastifyInstance): void {
    app.addHook('onResponse', async (request, reply) => {
      if (!request.url.startsWith('/RPC')) return
      const site = request.headers['sec-fetch-site']
      this.list.push({ url: request.url, method: request.method, status: reply.statusCode, origin: request.headers.origin, site: typeof site === 'string' ? site : undefined })
      this.emit('answered')
    })
  }

  async until (count: number, what: string): Promise<Answered[]> {
    while (this.list.length < count) await within(15_000, what, once(this, 'answered'))
    return this.list.slice(0, count)
  }
}

/**
 * The attacker's page: on load, every way a page can POST to another origin without a CORS preflight,
 * each carrying ws.disable (the batch also closes the first connections by guessed id). `via` tells
 * them apart on the server.
 */
function attackPage (rpcUrl: string): string {
  const disable = JSON.stringify({ jsonrpc: '2.0', method: 'ws.disable', id: 1 })
  const batch = JSON.stringify([...[1, 2, 3].map((id) => ({ jsonrpc: '2.0', method: 'ws.close', params: [id], id })), { jsonrpc: '2.0', method: 'ws.disable', id: 4 }])
  // A text/plain form sends `name=value`: this name and value make that a JSON-RPC call.
  const formName = '{"jsonrpc":"2.0","method":"ws.disable","id":1,"pad":"'
  return `<!doctype html><meta charset="utf-8"><title>cute cats</title>
<iframe name="sink"></iframe>
<form method="POST" enctype="text/plain" action="${rpcUrl}?via=form" target="sink"><input name='${formName}' value='"}'></form>
<script>
const rpc = ${JSON.stringify(rpcUrl)}
fetch(rpc + '?via=fetch-no-cors', { method: 'POST', mode: 'no-cors', headers: { 'Content-Type': 'text/plain' }, body: ${JSON.stringify(disable)} }).catch(() => {})
fetch(rpc + '?via=fetch-cors', { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: ${JSON.stringify(batch)} }).catch(() => {})
navigator.sendBeacon(rpc + '?via=beacon', new Blob([${JSON.stringify(disable)}], { type: 'text/plain' }))
document.forms[0].submit()
</script>`
}

/** Another origin: another port on 127.0.0.1, or the same port under the name EVIL. */
async function startPages (rpcUrl: () => string): Promise<{ app: FastifyInstance, port: number }> {
  const app = Fastify({ logger: false })
  app.get('/attack', async (_request, reply) => await reply.type('text/html; charset=utf-8').send(attackPage(rpcUrl())))
  app.get('/admin', async (_request, reply) => await reply.type('text/html; charset=utf-8').send('<!doctype html><title>admin</title>'))
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('the page server has no port')
  return { app, port: address.port }
}

describe('in Chromium, no web page can drive /RPC', () => {
  let browser: Browser | undefined
  let pages: { app: FastifyInstance, port: number } | undefined
  let rpcUrl = ''

  before(reportedSetUp(async () => {
    if (!hasChromium()) return
    pages = await startPages(() => rpcUrl)
    browser = await launchChromium(`MAP ${EVIL} 127.0.0.1`)
  }))
  after(async () => {
    await browser?.close()
    await pages?.app.close()
  })

  function ready (): { browser: Browser, pagesPort: number } {
    assertChromium()
    assert.ok(browser !== undefined && pages !== undefined, 'the before hook did not finish')
    return { browser, pagesPort: pages.port }
  }

  async function open (browser: Browser, url: string): Promise<Page> {
    const context = await browser.newContext()
    const page = await context.newPage()
    page.setDefaultTimeout(10_000)
    await page.goto(url)
    return page
  }

  test('the example: fetch (no-cors and cors) with text/plain, sendBeacon and a text/plain form, from a cross-site and a same-site page, are all refused; the service stays enabled', async (t) => {
    const { browser, pagesPort } = ready()
    const answers = new RpcAnswers()
    let example: Example | undefined
    let ws: WebSocket | undefined
    try {
      example = await startExample({}, { setup: (app) => { answers.watch(app) } })
      rpcUrl = `${example.httpUrl}RPC`
      ws = await connect(example.wsUrl)
      const id = example.app.wsDump().connections[0].id
      const statsBefore = example.app.wsStats()
      const vias = ['beacon', 'fetch-cors', 'fetch-no-cors', 'form']
      const origins = [`http://${EVIL}:${pagesPort}`, `http://127.0.0.1:${pagesPort}`]
      for (const [i, origin] of origins.entries()) {
        const page = await open(browser, `${origin}/attack`)
        const seen = (await answers.until(vias.length * (i + 1), `${vias.length} requests from ${origin}`)).slice(vias.length * i)
        assert.deepEqual(seen.map((a) => new URL(a.url, 'http://x').searchParams.get('via')).sort(), vias)
        for (const answer of seen) {
          assert.equal(answer.method, 'POST')
          assert.equal(answer.origin, origin, answer.url)
          assert.equal(answer.status, 403, `${answer.url} from ${origin}`)
        }
        t.diagnostic(`${origin}: ${seen.map((a) => `${a.url} Sec-Fetch-Site ${String(a.site)} → ${a.status}`).join(', ')}`)
        await page.context().close()
      }
      assert.deepEqual(answers.list.filter((a) => a.origin === origins[0]).map((a) => a.site), vias.map(() => 'cross-site'))
      assert.equal((await handshakeStatus(example.wsUrl)).status, 101, 'no ws.disable ran')
      assert.equal(example.app.wsConnection(id)?.state, 'OPEN', 'no ws.close ran')
      assert.equal(example.app.wsStats().ws_local_closed_connections, statsBefore.ws_local_closed_connections)
    } finally {
      ws?.terminate()
      await example?.app.close()
    }
  })

  test('the example, DNS-rebinding style: its own page loaded under another name cannot read ws.dump with a same-origin fetch', async () => {
    const { browser } = ready()
    const example = await startExample()
    try {
      // After a rebinding, the attacker's name points at the edge: the page and /RPC share an origin.
      const page = await open(browser, `http://${EVIL}:${example.port}/`)
      const answer = await page.evaluate(async () => {
        const res = await fetch('/RPC', { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: JSON.stringify({ jsonrpc: '2.0', method: 'ws.dump', id: 1 }) })
        return { status: res.status, body: await res.text() }
      })
      assert.deepEqual(answer, { status: 403, body: JSON.stringify({ jsonrpc: '2.0', error: { code: 403, message: 'Origin not allowed' }, id: null }) })
      await page.context().close()
    } finally {
      await example.app.close()
    }
  })

  test('rpc.allowedOrigins: the listed admin page calls with a bearer token (a real preflight first); the same page under another name cannot', async () => {
    const { browser, pagesPort } = ready()
    const admin = `http://127.0.0.1:${pagesPort}`
    const answers = new RpcAnswers()
    const s = await startApp({ rpc: { path: '/RPC', allowedOrigins: [admin] } }, (app) => {
      answers.watch(app)
      app.addWsHook('rpc:request', async (request, reply) => {
        if (request.headers.authorization !== 'Bearer admin') return await reply.code(401).send({ error: 'unauthorized' })
      })
    })
    const ws = await connect(s.url)
    try {
      const call = async (page: Page): Promise<unknown> => await page.evaluate(async (url) => {
        try {
          const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: 'Bearer admin' }, body: JSON.stringify({ jsonrpc: '2.0', method: 'ws.dump', id: 1 }) })
          return { status: res.status, body: await res.json() }
        } catch (err) {
          return { failed: String(err) }
        }
      }, `http://127.0.0.1:${s.port}/RPC`)

      const listed = await open(browser, `${admin}/admin`)
      const result = await call(listed) as { status: number, body: { result: { info: { wscounter: number } } } }
      assert.equal(result.status, 200)
      assert.equal(result.body.result.info.wscounter, 1)
      const [preflight, post] = await answers.until(2, 'the preflight and the POST')
      assert.deepEqual([preflight.method, preflight.status, post.method, post.status], ['OPTIONS', 204, 'POST', 200])
      await listed.context().close()

      const other = await open(browser, `http://${EVIL}:${pagesPort}/admin`)
      const refused = await call(other) as { failed?: string }
      assert.match(String(refused.failed), /TypeError/)
      const [, , denied] = await answers.until(3, 'the refused preflight')
      assert.deepEqual([denied.method, denied.status, denied.origin], ['OPTIONS', 403, `http://${EVIL}:${pagesPort}`])
      assert.equal(answers.list.length, 3, 'no POST followed the refused preflight')
      await other.context().close()
    } finally {
      ws.terminate()
      await s.app.close()
    }
  })
})
