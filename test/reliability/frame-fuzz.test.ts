import assert from 'node:assert/strict'
import { EventEmitter, once } from 'node:events'
import { describe, test } from 'node:test'
import type { WsClosedEvent } from '../../lib'
import { generateFrames, type Expected, type FrameCase } from '../helpers/frame-fuzz'
import { rawWebSocket, type FrameReader, type ServerFrame } from '../helpers/frames'
import { runConcurrently, within } from '../helpers/pool'
import { Rng, describeBytes, fuzzSeed } from '../helpers/random'
import { connect, loggedApp, nextMessage, startApp } from '../helpers/server'

const SEED = fuzzSeed()
const CASES = 5000
const CONCURRENCY = 20
const MAX_PAYLOAD = 1024
const WAIT = 5000

/** What the server did with each connection, as its hooks saw it. */
class Seen extends EventEmitter {
  readonly idByPort = new Map<number, number>()
  readonly messages = new Map<number, Array<string | Buffer>>()
  readonly closed = new Map<number, WsClosedEvent[]>()

  async messagesOf (id: number, count: number): Promise<Array<string | Buffer>> {
    const list = (): Array<string | Buffer> => this.messages.get(id) ?? []
    while (list().length < count) await once(this, `message:${id}`)
    return list()
  }

  async closedOf (id: number): Promise<WsClosedEvent> {
    while (this.closed.get(id) === undefined) await once(this, `closed:${id}`)
    return (this.closed.get(id) as WsClosedEvent[])[0]
  }
}

/** The frames the server sends until its Close or the end of the TCP connection. */
async function framesUntilClose (reader: FrameReader): Promise<{ frames: ServerFrame[], close: ServerFrame | null }> {
  const frames: ServerFrame[] = []
  for (let i = 0; i < 200; i++) {
    const f = await reader.next(WAIT)
    if (f === null || f.opcode === 8) return { frames, close: f }
    frames.push(f)
  }
  throw new Error('200 frames and no Close')
}

function sameMessages (got: Array<string | Buffer>, expected: Expected['messages']): boolean {
  return got.length === expected.length && got.every((m, i) => expected[i].binary
    ? Buffer.isBuffer(m) && m.equals(expected[i].data)
    : typeof m === 'string' && Buffer.from(m).equals(expected[i].data))
}

async function runCase (port: number, seen: Seen, registered: (id: number) => boolean, c: FrameCase, where: string): Promise<string> {
  const reader = await rawWebSocket(port)
  const id = seen.idByPort.get(reader.socket.localPort ?? 0)
  assert.ok(id !== undefined, `no open event for the connection: ${where}`)
  const exp = c.expected
  reader.write(c.bytes)
  let outcome: string
  let expectedEvent: { by: string, code: number }
  const earlyUtf8Failure = (close: ServerFrame | null): boolean => exp.mayFailEarly && close !== null && close.opcode === 8 && close.payload.length >= 2 && close.payload.readUInt16BE(0) === 1007
  let early: ServerFrame | null = null
  if (exp.end.kind === 'open') {
    // Nothing to fail: the Pongs come, the messages are delivered, and the connection waits for more.
    for (const payload of exp.pongs) {
      const f = await reader.next(WAIT)
      if (earlyUtf8Failure(f)) { early = f; break }
      assert.ok(f !== null && f.opcode === 10 && f.payload.equals(payload), `expected a Pong carrying ${describeBytes(payload, 40, 'hex')}, got ${f === null ? 'TCP close' : `opcode ${f.opcode}`}: ${where}`)
    }
  }
  if (early !== null) {
    reader.socket.end()
    outcome = 'fail 1007'
    expectedEvent = { by: 'error', code: 1007 }
  } else if (exp.end.kind === 'open') {
    await seen.messagesOf(id, exp.messages.length)
    reader.socket.end()
    await reader.ended
    outcome = 'open'
    expectedEvent = { by: 'remote', code: 1006 }
  } else {
    const { frames, close } = await framesUntilClose(reader)
    assert.ok(close !== null, `the server closed TCP without a Close frame: ${where}`)
    const code = close.payload.length >= 2 ? close.payload.readUInt16BE(0) : null
    if (!earlyUtf8Failure(close)) {
      assert.deepEqual(frames.map((f) => [f.opcode, f.payload.toString('hex')]), exp.pongs.map((p) => [10, p.toString('hex')]), `a Pong for each Ping, nothing else: ${where}`)
    }
    if (exp.end.kind === 'fail') {
      const allowed = earlyUtf8Failure(close) ? [...exp.end.codes, 1007] : exp.end.codes
      assert.ok(code !== null && allowed.includes(code), `closed with ${String(code)}, expected one of ${allowed.join(', ')}: ${where}`)
      expectedEvent = { by: 'error', code }
      outcome = `fail ${code}`
    } else {
      assert.equal(code, exp.end.reply, `the answer to the client's Close: ${where}`)
      expectedEvent = { by: 'remote', code: exp.end.code ?? 1005 }
      outcome = 'close'
    }
    reader.socket.end()
  }
  const event = await seen.closedOf(id)
  assert.deepEqual({ by: event.by, code: event.code }, expectedEvent, `the closed event: ${where}`)
  assert.equal(seen.closed.get(id)?.length, 1, `closed fired once: ${where}`)
  assert.equal(registered(id), false, `still in the registry after its closed event: ${where}`)
  // Failing early on UTF-8 only ends a text message sooner: no other message could have followed it.
  const delivered = seen.messages.get(id) ?? []
  assert.ok(sameMessages(delivered, exp.messages), `delivered ${delivered.length} message(s), expected ${exp.messages.length}: ${where}`)
  return outcome
}

describe('frame fuzzing', () => {
  test(`${CASES} generated frame sequences after a valid handshake, seed ${SEED} (FUZZ_SEED=${SEED} replays them)`, async (t) => {
    const logs = loggedApp('warn')
    const seen = new Seen()
    // No keepalive: the server must send nothing the model did not predict.
    const { app, port, url } = await startApp({ maxPayload: MAX_PAYLOAD, keepaliveMechanism: 0, closeTimeout: 1000 }, (a) => {
      a.addWsHook('websocket:open', (e) => { seen.idByPort.set(e.remotePort, e.id) })
      a.addWsHook('websocket:message', (m) => {
        const list = seen.messages.get(m.id) ?? []
        list.push(m.data)
        seen.messages.set(m.id, list)
        seen.emit(`message:${m.id}`)
        if (m.data === 'echo me') a.wsSend(m.id, m.data)
      })
      a.addWsHook('websocket:closed', (e) => {
        const list = seen.closed.get(e.id) ?? []
        list.push(e)
        seen.closed.set(e.id, list)
        seen.emit(`closed:${e.id}`)
      })
    }, logs.fastifyOptions)
    const rng = new Rng(SEED)
    const outcomes = new Map<string, number>()
    try {
      await runConcurrently(CASES, CONCURRENCY, async (index) => {
        const c = generateFrames(rng.fork(index), MAX_PAYLOAD)
        const where = `seed ${SEED} case ${index} (${c.description})\nbytes: ${describeBytes(c.bytes, 200, 'hex')}`
        const outcome = await within(runCase(port, seen, (id) => app.wsConnection(id) !== undefined, c, where), 3 * WAIT, () => `case stuck: ${where}`)
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
      })
      t.diagnostic(`seed ${SEED}: ${CASES} cases: ${[...outcomes].sort().map(([o, n]) => `${o}×${n}`).join(', ')}`)
      assert.ok((outcomes.get('open') ?? 0) > CASES / 20 && (outcomes.get('fail 1002') ?? 0) > CASES / 20, 'the generator should mix valid streams and protocol errors')

      assert.equal(seen.closed.size, CASES, 'a closed event for every connection')
      for (const [id, events] of seen.closed) assert.equal(events.length, 1, `connection ${id}: closed fired ${events.length} times`)
      assert.equal(app.wsDump().wscounter, 0, 'the registry is empty')
      assert.equal(app.wsStats().ws_current_connections, 0)

      const ws = await connect(url)
      ws.send('echo me')
      assert.equal(String((await nextMessage(ws)).data), 'echo me')
      ws.terminate()
      assert.deepEqual(logs.entries.filter((e) => e.level >= 50), [], 'nothing logged as an error')
    } finally {
      await app.close()
    }
  })
})
