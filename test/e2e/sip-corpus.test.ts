import assert from 'node:assert/strict'
import { isUtf8 } from 'node:buffer'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { headerKey, SipRequest, SipResponse, type SipMessage } from '../../example/sip/message'
import { parseSip } from '../../example/sip/parse'
import { localResponse } from '../../example/sip/reply'
import { RFC4475 } from '../fixtures/sip-torture/rfc4475'
import { RFC5118 } from '../fixtures/sip-torture/rfc5118'
import { freePort } from '../helpers/lwsc'
import { until } from '../helpers/pool'
import { RawCore, type AtCore } from '../helpers/raw-core'
import { reportedSetUp } from '../helpers/set-up'
import { tortureBytes } from '../helpers/torture'
import { RawSipClient, startExample, type Example } from './helpers'

/** What a proxy may change in a message it forwards (RFC 3261 §16.6; Path and Supported on a REGISTER through an edge, RFC 3327). */
const CHANGEABLE = new Set(['via', 'route', 'record-route', 'max-forwards', 'path', 'supported', 'content-length'])
/** The header lines a forwarded message must carry unchanged, byte for byte, in order. */
const kept = (message: SipMessage): string[] => message.headers.filter((h) => !CHANGEABLE.has(headerKey(h.name))).map((h) => h.raw ?? `${h.name}: ${h.value}`)
const lines = (message: SipMessage, key: string): string[] => message.headers.filter((h) => headerKey(h.name) === key).map((h) => h.raw ?? `${h.name}: ${h.value}`)

const CORPUS = [...RFC4475, ...RFC5118]
const requests = CORPUS.filter((m) => !m.lines[0].startsWith('SIP/'))
const responses = CORPUS.filter((m) => m.lines[0].startsWith('SIP/'))

/** Asserts `forwarded` means what `original` meant: every header the edge may not touch, the body, the start line. */
function assertSameMeaning (original: SipMessage, forwarded: SipMessage, what: string): void {
  assert.deepEqual(kept(forwarded), kept(original), `${what}: the headers the edge may not change`)
  assert.ok(forwarded.body.equals(original.body), `${what}: the body, byte for byte`)
  if (original instanceof SipRequest) {
    assert.ok(forwarded instanceof SipRequest)
    assert.deepEqual([forwarded.method, forwarded.uri], [original.method, original.uri], `${what}: the request line`)
    const forwards = original.get('max-forwards')
    assert.equal(Number(forwarded.get('max-forwards')), forwards === undefined ? 70 : Number(forwards) - 1, `${what}: one hop less`)
  } else {
    assert.ok(forwarded instanceof SipResponse && original instanceof SipResponse)
    assert.deepEqual([forwarded.status, forwarded.reason], [original.status, original.reason], `${what}: the status line`)
  }
}

/**
 * The request as a proxy sends it to a strict router (RFC 3261 §16.6 step 6): when its first Route has no
 * `lr`, that Route's URI is the Request-URI and the Request-URI goes last in the Route set. RFC 4475
 * §3.1.1.11 (mpart01) carries such a Route.
 */
function toNextHop (request: SipRequest): SipRequest {
  const top = request.get('route')
  if (top === undefined || /;lr[;>]/.test(top)) return request
  const strict = parseSip(request.toBuffer()) as SipRequest
  strict.uri = /^<([^>]*)>/.exec(top)?.[1] ?? strict.uri
  strict.set('Route', `<${request.uri}>`)
  return strict
}

describe('RFC 4475 and RFC 5118 through the edge, both ways, in text and binary WebSocket messages', () => {
  let core: RawCore
  let example: Example
  let alice: RawSipClient
  let listenPort = 0
  let token = ''
  const seen = new Set<string>()
  const handled: Record<string, number> = {}
  const count = (kind: string): void => { handled[kind] = (handled[kind] ?? 0) + 1 }

  /**
   * The next message at the core that is not a retransmission of one already taken since the last send
   * (`seen` is cleared before each), nor a 100 Trying.
   */
  async function atCore (kind: 'request' | 'response'): Promise<AtCore> {
    for (let i = 0; i < 20; i++) {
      const next = await core.next()
      const key = next.bytes.toString('latin1')
      if (seen.has(key) || next.message.kind !== kind || (next.message instanceof SipResponse && next.message.status === 100)) continue
      seen.add(key)
      return next
    }
    throw new Error(`no new ${kind} at the core in 20 messages`)
  }

  /** Lets the edge's client transaction end: a final answer from the core, which alice hears. */
  async function finish (request: SipRequest): Promise<void> {
    core.send(localResponse(request, request.method === 'INVITE' ? 486 : 200, 'Done', 'raw core').toBuffer(), listenPort)
    assert.ok((await alice.next()) instanceof SipResponse)
  }

  const dropsFromCore = (): number => example.log.filter((e) => e.outcome === 'dropped' && e.direction === 'from-core').length

  before(reportedSetUp(async () => {
    core = await RawCore.start()
    listenPort = await freePort('both')
    example = await startExample({ sipCore: `udp:127.0.0.1:${core.port}`, sipListen: `udp:127.0.0.1:${listenPort}` })
    alice = await RawSipClient.connect(example.wsUrl, 'alice')
    alice.send(alice.request('REGISTER', 'sip:example.test', { to: 'sip:alice@example.test' }))
    const register = (await atCore('request')).message as SipRequest
    token = /^<sip:([^@]+)@/.exec(register.get('path') ?? '')?.[1] ?? assert.fail('a Path with a token')
    core.send(localResponse(register, 200, 'OK', 'raw core', [['Contact', `<${alice.contact}>;expires=600`]]).toBuffer(), listenPort)
    assert.equal((await alice.next() as SipResponse).status, 200)
  }))
  after(async () => {
    await alice?.close()
    await example?.app.close()
    await core?.close()
  })

  for (const message of requests) {
    const name = `RFC ${message.rfc} §${message.section} ${message.name}`
    test(`${name} from a WebSocket client: ${message.expect.kind === 'refuse' ? `refused ${message.expect.status}` : 'to the core, meaning unchanged'}`, async () => {
      const bytes = tortureBytes(message)
      const frames: Array<string | Buffer> = isUtf8(bytes) ? [bytes.toString(), bytes] : [bytes]
      for (const frame of frames) {
        const what = `${message.name} in a ${typeof frame === 'string' ? 'text' : 'binary'} message`
        seen.clear()
        alice.send(frame)
        if (message.expect.kind === 'refuse') {
          const answer = await alice.next()
          assert.ok(answer instanceof SipResponse, what)
          assert.equal(answer.status, message.expect.status, what)
          assert.equal(answer.get('call-id'), /^(?:Call-ID|i)\s*:\s*(.*)$/im.exec(bytes.toString('latin1'))?.[1], `${what}: the answer carries the request's Call-ID`)
          continue
        }
        const original = parseSip(bytes) as SipRequest
        const { message: forwarded } = await atCore('request')
        assertSameMeaning(toNextHop(original), forwarded, what)
        assert.deepEqual(lines(forwarded, 'via').slice(1), lines(original, 'via'), `${what}: the Via lines under the edge's, byte for byte`)
        await finish(forwarded as SipRequest)
      }
      count(`${message.expect.kind} from ws`)
    })

    test(`${name} from the core: ${message.expect.kind === 'refuse' ? 'dropped with a log line' : 'to its client, meaning unchanged'}`, async () => {
      // As the core sends it: its own Via on top, the Route to alice's flow first.
      const [start, ...rest] = tortureBytes(message).toString('latin1').split('\r\n')
      const sent = Buffer.from([start, `Via: SIP/2.0/UDP 127.0.0.1:${core.port};branch=z9hG4bK${randomBytes(6).toString('hex')};rport`, `Route: <sip:${token}@127.0.0.1:${listenPort};lr>`, ...rest].join('\r\n'), 'latin1')
      const drops = dropsFromCore()
      seen.clear()
      core.send(sent, listenPort)
      if (message.expect.kind === 'refuse' && message.expect.status !== 483) {
        await until(() => dropsFromCore() > drops, 3000, () => `a drop of ${message.name} logged`)
        count('dropped from core')
        return
      }
      if (message.expect.kind === 'refuse') {
        const answer = (await atCore('response')).message as SipResponse
        assert.equal(answer.status, 483, 'Max-Forwards 0 is valid: it gets its answer')
        count('refuse from core')
        return
      }
      const original = parseSip(sent)
      const { data, binary } = await alice.nextRaw()
      assert.equal(binary, !isUtf8(data), 'text when it is UTF-8, binary when not (RFC 7118 §5.1)')
      const forwarded = parseSip(data)
      assertSameMeaning(original, forwarded, message.name)
      assert.deepEqual(lines(forwarded, 'via').slice(2), lines(original, 'via').slice(1), 'the Via lines under the core\'s, byte for byte')
      assert.deepEqual(lines(forwarded, 'route'), lines(original, 'route').slice(1), 'only the edge\'s own Route went')
      alice.send(alice.answer(forwarded, 200, 'OK'))
      assert.equal(((await atCore('response')).message as SipResponse).status, 200)
      count(`${message.expect.kind} from core`)
    })
  }

  for (const message of responses) {
    test(`RFC ${message.rfc} §${message.section} ${message.name} from the core: ${message.expect.kind === 'drop' ? 'dropped with a log line' : 'to the client, meaning unchanged'}`, async () => {
      const method = /^CSeq:\s*\d+\s+(\S+)/im.exec(tortureBytes(message).toString('latin1'))?.[1] ?? 'INVITE'
      seen.clear()
      alice.send(alice.request(method, 'sip:phone@core.example'))
      const request = (await atCore('request')).message as SipRequest
      // The corpus response, with the Via lines of the request it answers, as the core would send it.
      const vias = request.headers.filter((h) => headerKey(h.name) === 'via').map((h) => h.raw ?? `${h.name}: ${h.value}`)
      const text = tortureBytes(message).toString('latin1').split('\r\n')
      const answer = Buffer.from([text[0], ...vias, ...text.slice(1).filter((l) => !/^via\s*:/i.test(l))].join('\r\n'), 'latin1')
      const drops = dropsFromCore()
      core.send(answer, listenPort)
      if (message.expect.kind === 'drop') {
        await until(() => dropsFromCore() > drops, 3000, () => `a drop of ${message.name} logged`)
        await finish(request)
      } else if (message.lines[0].startsWith('SIP/2.0 100 ')) {
        // RFC 3261 §16.7 step 3: a 100 Trying is hop by hop: it stops the edge's retransmissions, it is not forwarded.
        await finish(request)
      } else {
        const forwarded = await alice.next()
        assertSameMeaning(parseSip(answer), forwarded, message.name)
      }
      count(`${message.expect.kind} response`)
    })
  }

  test('the corpus result: every message handled as the RFC says, both ways', (t) => {
    const kinds = (kind: string): number => requests.filter((m) => m.expect.kind === kind).length
    const refusedBy = (status: number): number => requests.filter((m) => m.expect.kind === 'refuse' && m.expect.status === status).length
    assert.deepEqual(handled, {
      'forward from ws': kinds('forward'),
      'forward from core': kinds('forward'),
      'liberal from ws': kinds('liberal'),
      'liberal from core': kinds('liberal'),
      'refuse from ws': kinds('refuse'),
      'dropped from core': kinds('refuse') - refusedBy(483),
      'refuse from core': refusedBy(483),
      'forward response': responses.filter((m) => m.expect.kind === 'forward').length,
      'drop response': responses.filter((m) => m.expect.kind === 'drop').length
    })
    const cases = Object.values(handled).reduce((a, b) => a + b, 0)
    t.diagnostic(`${CORPUS.length} messages (RFC 4475 §3: ${RFC4475.length}, RFC 5118 §4: ${RFC5118.length}); ${cases} of ${2 * requests.length + responses.length} cases handled as the RFC says: ${JSON.stringify(handled)}`)
  })
})
