import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { after, before, describe, test } from 'node:test'
import { SipRequest, SipResponse, type SipMessage } from '../../example/sip/message'
import { freePort } from '../helpers/lwsc'
import { reportedSetUp } from '../helpers/set-up'
import { SIPP, SIPP_HINT, sippPassed, startSipp, type Sipp } from '../helpers/sipp'
import { RawSipClient, startExample, type Example } from './helpers'

const asRequest = (message: SipMessage, method: string): SipRequest => { assert.ok(message instanceof SipRequest && message.method === method, message.toString().split('\r\n')[0]); return message }
const asResponse = (message: SipMessage): SipResponse => { assert.ok(message instanceof SipResponse, message.toString().split('\r\n')[0]); return message }

/** The messages sipp says it lost: the `Lost` column of the last scenario screen it printed, summed. */
function lostIn (output: string): number {
  const lines = output.split('\n')
  const header = lines.map((line) => /Messages\s+Retrans.*Lost/.test(line)).lastIndexOf(true)
  if (header === -1) return 0
  const at = lines[header].indexOf('Lost')
  let lost = 0
  for (const line of lines.slice(header + 1)) {
    if (line.startsWith('---') || line.trim() === '') break
    lost += Number(/\d+/.exec(line.slice(at - 4, at + 8))?.[0] ?? 0)
  }
  return lost
}

for (const host of ['127.0.0.1', '::1'] as const) {
  describe(`UDP towards the core is the edge's to make reliable: sipp as the core on ${host}, dropping copies`, () => {
    let example: Example
    let client: RawSipClient
    let corePort = 0
    let listenPort = 0
    let token = ''
    const uriHost = host === '::1' ? '[::1]' : host
    const sipps: Sipp[] = []
    const sipp = async (scenario: string, options: Parameters<typeof startSipp>[1]): Promise<Sipp> => {
      const started = await startSipp(scenario, { host, ...options })
      sipps.push(started)
      return started
    }

    before(reportedSetUp(async () => {
      assert.ok(existsSync(SIPP), SIPP_HINT)
      corePort = await freePort('both')
      listenPort = await freePort('both')
      example = await startExample({ sipCore: `udp:${uriHost}:${corePort}`, sipListen: `udp:${uriHost}:${listenPort}` })
      const registrar = await sipp('core-registrar.xml', { port: corePort })
      client = await RawSipClient.connect(example.wsUrl, 'client')
      assert.equal(asResponse(await client.register('example.test', 600)).status, 200)
      token = (await registrar.printed('SIPP-PATH-TOKEN')).split(' ')[1]
      await sippPassed(registrar, 'core-registrar.xml')
    }))
    after(async () => {
      for (const s of sipps) await s.stop()
      await client?.close()
      await example?.app.close()
    })

    test('a MESSAGE and an INVITE whose first copies the core loses, and a 200 the edge loses: Timer E and Timer A carry them through', async (t) => {
      const core = await sipp('core-loses-first-copies.xml', { port: corePort, extra: ['-nr'] })
      const started = performance.now()
      client.send(client.request('MESSAGE', 'sip:phone@example.test', { body: 'through loss', callId: `loss-${host}` }))
      assert.equal(asResponse(await client.next(10_000)).status, 200)
      const elapsed = performance.now() - started
      t.diagnostic(`MESSAGE → 200 after a lost request and a lost answer: ${elapsed.toFixed(0)} ms (Timer E: T1, then 2×T1)`)
      assert.ok(elapsed >= 1400, 'two retransmissions, at T1 and 3×T1, came before the 200')
      client.send(client.request('INVITE', 'sip:phone@example.test', { callId: `loss-${host}`, branch: `z9hG4bKloss${corePort}` }))
      const ok = asResponse(await client.next(10_000))
      assert.equal(ok.status, 200)
      assert.match(ok.get('contact') ?? '', new RegExp(`^<sip:${uriHost.replace(/[[\]]/g, '\\$&')}:\\d+;transport=UDP>$`), 'a contact with no user part, transport in upper case')
      const routes = ok.getAll('record-route').join(', ')
      client.send(client.request('ACK', ok.get('contact')?.slice(1, -1) ?? '', { callId: `loss-${host}`, to: 'sip:phone@example.test', headers: { To: ok.get('to') ?? '', Route: routes, CSeq: '1 ACK' } }))
      client.send(client.request('BYE', ok.get('contact')?.slice(1, -1) ?? '', { callId: `loss-${host}`, to: 'sip:phone@example.test', headers: { To: ok.get('to') ?? '', Route: routes, CSeq: '2 BYE' } }))
      assert.equal(asResponse(await client.next(10_000)).status, 200, 'the BYE\'s 200, its first copy lost')
      await sippPassed(core, 'core-loses-first-copies.xml')
    })

    test('a MESSAGE from the core whose first copy is lost, and whose 200 the core does not hear: the client sees it once', async () => {
      const core = await sipp('core-sends-twice.xml', { remote: `${uriHost}:${listenPort}`, keys: { token }, extra: ['-nr'] })
      const message = asRequest(await client.next(10_000), 'MESSAGE')
      assert.equal(message.body.toString().trim(), 'once')
      client.send(client.answer(message, 200, 'OK'))
      await sippPassed(core, 'core-sends-twice.xml')
      assert.equal(client.received.length, 0, 'the third copy was answered by the edge, not relayed')
    })

    test('fifteen MESSAGEs from a core that loses 25% of what it sends and receives (sipp -lost 25): each reaches the client once, each gets its 200', async (t) => {
      const calls = 15
      const core = await sipp('core-sends-lossy.xml', { remote: `${uriHost}:${listenPort}`, keys: { token }, calls, timeoutMs: 60_000, extra: ['-lost', '25', '-max_non_invite_retrans', '30'] })
      const bodies: string[] = []
      for (let i = 0; i < calls; i++) {
        const message = asRequest(await client.next(20_000), 'MESSAGE')
        bodies.push(message.body.toString().trim())
        client.send(client.answer(message, 200, 'OK'))
      }
      await sippPassed(core, 'core-sends-lossy.xml', 60_000)
      assert.deepEqual(bodies, Array.from({ length: calls }, (_, i) => `lossy ${i + 1}`))
      const lost = lostIn(core.printedAll())
      t.diagnostic(`sipp lost ${lost} messages on the way; the client saw ${calls} MESSAGEs, no copy twice`)
      // Of at least 30 messages, each lost one time in four: none lost would be a 1-in-5000 run.
      assert.ok(lost > 0, 'sipp lost some')
    })
  })
}
