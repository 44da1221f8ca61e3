import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import { HEALTH_PATH, serveHealth } from '../../example/health'
import { reportedSetUp } from '../helpers/set-up'

let app: FastifyInstance
let base = ''
let draining = false

before(reportedSetUp(async () => {
  app = Fastify({ logger: false })
  serveHealth(app, () => draining)
  base = await app.listen({ host: '127.0.0.1', port: 0 })
}))
after(async () => { await app?.close() })

test('GET /health: 200 while serving, 503 with Retry-After once draining; never cached', async () => {
  const ok = await fetch(base + HEALTH_PATH)
  assert.equal(ok.status, 200)
  assert.deepEqual(await ok.json(), { status: 'ok' })
  assert.equal(ok.headers.get('cache-control'), 'no-store')
  draining = true
  const out = await fetch(base + HEALTH_PATH)
  assert.equal(out.status, 503)
  assert.equal(out.headers.get('retry-after'), '5')
  assert.deepEqual(await out.json(), { status: 'draining' })
})
