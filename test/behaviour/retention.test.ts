// An open connection must not keep its upgrade request alive: with thousands of idle connections, a
// pinned IncomingMessage, ServerResponse and Fastify request/reply per socket would double their cost.
import assert from 'node:assert/strict'
import { setImmediate as tick } from 'node:timers/promises'
import { test } from 'node:test'
import { settledMemory } from '../helpers/memory'
import { closed, connect, nextMessage, startApp } from '../helpers/server'

test('the upgrade request and response are collectable while the connection stays open', async (t) => {
  const refs: Array<WeakRef<object>> = []
  const { app, url } = await startApp({}, (app) => {
    app.addWsHook('xhttp:request', (request, reply) => { refs.push(new WeakRef(request), new WeakRef(request.raw), new WeakRef(reply.raw)) })
    app.addWsHook('websocket:message', (msg) => { app.wsSend(msg.id, msg.data) })
  })
  t.after(async () => { await app.close() })
  const ws = await connect(url)
  // WeakRefs made in a job hold their target until that job ends: collect from a later one.
  await tick()
  settledMemory()
  await tick()
  assert.equal(refs.length, 3)
  assert.deepEqual(refs.map((r) => r.deref() === undefined), [true, true, true], 'request, raw request and raw response still reachable')
  // ... and the connection works on without them.
  ws.send('still here')
  assert.equal((await nextMessage(ws)).data.toString(), 'still here')
  assert.equal(app.wsDump().connections.length, 1)
  ws.close()
  await closed(ws)
})
