import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import { PAGE_HEADERS, servePage } from '../../example/page'
import { reportedSetUp } from '../helpers/set-up'

let app: FastifyInstance
let base = ''

before(reportedSetUp(async () => {
  app = Fastify({ logger: false })
  await servePage(app)
  base = await app.listen({ host: '127.0.0.1', port: 0 })
}))
after(async () => { await app?.close() })

test('the page, its style sheet and its script, each with the page headers (CSP, nosniff, no-cache)', async () => {
  const cases: Array<[string, RegExp, RegExp]> = [
    ['/', /^text\/html; charset=utf-8$/, /<form id="register-form"/],
    ['/style.css', /^text\/css; charset=utf-8$/, /\{/],
    ['/app.js', /^text\/javascript; charset=utf-8$/, /JsSIP/]
  ]
  for (const [path, type, body] of cases) {
    const res = await fetch(base + path, { signal: AbortSignal.timeout(60_000) })
    assert.equal(res.status, 200, path)
    assert.match(res.headers.get('content-type') ?? '', type)
    for (const [name, value] of Object.entries(PAGE_HEADERS)) assert.equal(res.headers.get(name), value, `${path} ${name}`)
    assert.match(await res.text(), body, path)
  }
})

test('the CSP lets the page reach only its own origin, WebSockets included', () => {
  assert.match(PAGE_HEADERS['content-security-policy'], /default-src 'self'; connect-src 'self' ws: wss:;/)
  assert.match(PAGE_HEADERS['content-security-policy'], /frame-ancestors 'none'/)
})
