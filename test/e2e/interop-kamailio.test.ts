import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import sipWs from '../../lib'
import { LwscClient, type LwscError } from '../../lib/lwsc'
import { startKamailio, type Kamailio } from '../helpers/kamailio'
import { freePort } from '../helpers/lwsc'
import { reportedSetUp } from '../helpers/set-up'

// A real Kamailio 5.6 as the peer, both ways: our client against its websocket module, and its lwsc module
// against our server plugin.

const CFG = join(__dirname, '..', 'fixtures', 'kamailio-ws.cfg')

/** An OPTIONS request as a SIP-over-WebSocket client sends it (RFC 7118 §5: Via transport WS, .invalid host). */
function sipOptions (port: number): string {
  const branch = 'z9hG4bK' + randomBytes(6).toString('hex')
  return [
    `OPTIONS sip:127.0.0.1:${port};transport=ws SIP/2.0`,
    `Via: SIP/2.0/WS ${randomBytes(4).toString('hex')}.invalid;branch=${branch};rport`,
    'Max-Forwards: 70',
    `To: <sip:127.0.0.1:${port}>`,
    `From: <sip:lwsc@example.invalid>;tag=${randomBytes(4).toString('hex')}`,
    `Call-ID: ${randomBytes(8).toString('hex')}@example.invalid`,
    'CSeq: 1 OPTIONS',
    'Content-Length: 0',
    '',
    ''
  ].join('\r\n')
}

describe('interop with Kamailio 5.6', () => {
  let kamailio: Kamailio | undefined
  let client: LwscClient | undefined
  let app: FastifyInstance | undefined

  before(reportedSetUp(async () => {
    kamailio = await startKamailio(CFG, await freePort())
  }))

  after(async () => {
    await client?.close()
    await kamailio?.stop()
    await app?.close()
  })

  test('our client: SIP OPTIONS over ws with sub-protocol sip gets 200 OK from Kamailio', async () => {
    assert.ok(kamailio, 'kamailio started')
    client = new LwscClient({ timeoutInit: 3000, timeoutRead: 3000 })
    const url = `ws://127.0.0.1:${kamailio.port}/`
    const reply = await client.requestProto(url, 'sip', sipOptions(kamailio.port))
    assert.equal(typeof reply, 'string')
    assert.match(reply as string, /^SIP\/2\.0 200 OK\r\n/, kamailio.log())
    assert.match(reply as string, /\r\nVia: SIP\/2\.0\/WS [0-9a-f]+\.invalid;branch=z9hG4bK[0-9a-f]+;rport=\d+;received=127\.0\.0\.1\r\n/)
    // The connection is reused: a second OPTIONS needs no new handshake.
    assert.match(await client.requestProto(url, 'sip', sipOptions(kamailio.port)) as string, /^SIP\/2\.0 200 OK\r\n/)
    assert.equal(client.stats().opened, 1)
  })

  test('our client: Kamailio refusing our sub-protocol (400 naming "sip") is a sub-protocol refusal', async () => {
    assert.ok(kamailio, 'kamailio started')
    const refused = new LwscClient({ timeoutInit: 3000 })
    const url = `ws://127.0.0.1:${kamailio.port}/`
    try {
      await assert.rejects(refused.request(url, 'hello'), (err: unknown) => {
        assert.equal((err as LwscError).code, 'FST_SIPWS_LWSC_PROTOCOL_REFUSED')
        assert.equal((err as LwscError).url, url)
        return true
      })
    } finally {
      await refused.close()
    }
  })

  test("Kamailio's lwsc_request_proto() gets our plugin's reply on a custom sub-protocol", async () => {
    assert.ok(kamailio, 'kamailio started')
    const seen: Array<{ data: string | Buffer, subProtocol: string }> = []
    app = Fastify({ logger: false })
    // Kamailio 5.6's lwsc asks for `//` when the URL's path is `/`: the plugin must still take it as `/`.
    await app.register(sipWs, { path: '/', subProtocols: ['kmsg'] })
    const server = app
    server.addWsHook('websocket:message', (msg) => {
      seen.push({ data: msg.data, subProtocol: msg.subProtocol })
      server.wsSend(msg.id, 'reply:' + msg.data.toString())
    })
    await app.listen({ host: '127.0.0.1', port: 0 })
    const address = app.server.address()
    assert.ok(address !== null && typeof address === 'object')
    const target = `ws://127.0.0.1:${address.port}/`

    const res = await fetch(`http://127.0.0.1:${kamailio.port}/lwsc?proto=kmsg&url=${target}`, { signal: AbortSignal.timeout(8000) })
    const body = await res.text()
    assert.equal(res.status, 200, `kamailio answered ${res.status} ${body}\n${kamailio.log()}`)
    assert.equal(body, 'reply:hello')
    assert.deepEqual(seen, [{ data: 'hello', subProtocol: 'kmsg' }])
  })
})
