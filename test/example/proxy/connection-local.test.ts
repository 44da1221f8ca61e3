import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import type { WsOpenEvent } from '../../../lib'
import { connectionLocal, type ConnectionLocal } from '../../../example/proxy/connection-local'
import { within } from '../../helpers/pool'
import { connect, startApp, type Started } from '../../helpers/server'

const apps: Started[] = []
after(async () => { await Promise.all(apps.map(async (s) => { await s.app.close() })) })

/** The ConnectionLocal of the next connection opened to a real server (with `trustProxy` when asked). */
async function openedLocal (headers: Record<string, string>, trustProxy = false): Promise<{ local: ConnectionLocal, event: WsOpenEvent }> {
  let resolve: (value: { local: ConnectionLocal, event: WsOpenEvent }) => void = () => {}
  const seen = new Promise<{ local: ConnectionLocal, event: WsOpenEvent }>((res) => { resolve = res })
  const started = await startApp({ subProtocols: ['sip'] }, (app) => {
    app.addWsHook('websocket:open', (event) => { resolve({ local: connectionLocal(event), event }) })
  }, { logger: false, trustProxy })
  apps.push(started)
  const ws = await connect(started.url, 'sip', { headers })
  const opened = await within(seen, 5000, () => 'the websocket:open event')
  ws.terminate()
  return opened
}

test('the local side the connection was accepted on, the Host it was opened with, not secure over ws:', async () => {
  const { local, event } = await openedLocal({ Host: 'edge.example:8080' })
  assert.deepEqual(local, { localAddress: '127.0.0.1', localPort: event.localPort, host: 'edge.example:8080', secure: false })
  assert.ok(local.localPort > 0)
  assert.deepEqual(JSON.parse(JSON.stringify(local)), local, 'it survives JSON, as cluster mode stores it in Redis')
})

test('secure when the upgrade came over HTTPS, as a trusted TLS proxy says with X-Forwarded-Proto', async () => {
  assert.equal((await openedLocal({ 'X-Forwarded-Proto': 'https' }, true)).local.secure, true)
  assert.equal((await openedLocal({ 'X-Forwarded-Proto': 'https' })).local.secure, false, 'not from an untrusted sender')
})
