import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import { expectTypeOf } from 'expect-type'
import ts from 'typescript'
import { DUMP_ORDERS } from '../../lib/constants'
import type {
  ClosedBy, ConnectionAddress, ConnectionInfo, ConnectionState, DumpOrder, DumpResult, ProtocolStatName, StatsSnapshot,
  TotalStatName, WsBinaryMessage, WsClosedEvent, WsData, WsMessage, WsOpenEvent, WsTextMessage
} from '../../lib/types'
import { connect, startApp } from '../helpers/server'

// Each list names every member of its type, no more: expectTypeOf below fails to compile otherwise, and the
// run-time checks then hold real values to the same lists.
const STATES = ['OPEN', 'CLOSING', 'CLOSED'] as const
const CLOSED_BY = ['local', 'remote', 'keepalive', 'error'] as const
const INFO_KEYS = ['id', 'state', 'subProtocol', 'createdAt', 'lastUsed', 'lastUsedAgo', 'remoteAddress', 'remotePort', 'socketAddress', 'socketPort', 'localAddress', 'localPort', 'transport'] as const
const OPEN_KEYS = ['id', 'subProtocol', 'remoteAddress', 'remotePort', 'socketAddress', 'socketPort', 'localAddress', 'localPort', 'request'] as const
const CLOSED_KEYS = ['id', 'remoteAddress', 'remotePort', 'socketAddress', 'socketPort', 'subProtocol', 'code', 'reason', 'by'] as const
const MESSAGE_KEYS = ['id', 'subProtocol', 'remoteAddress', 'remotePort', 'binary', 'data'] as const
const PROTOCOL_STATS = ['current_connections', 'max_concurrent_connections', 'failed_connections', 'local_closed_connections', 'remote_closed_connections', 'received_frames', 'transmitted_frames', 'successful_handshakes'] as const
const TOTAL_STATS = [...PROTOCOL_STATS, 'failed_handshakes', 'handshake_timeouts'] as const

const sorted = (keys: readonly string[]): string[] => [...keys].sort()

describe('shared types', () => {
  test('the unions, member by member', () => {
    expectTypeOf<ConnectionState>().toEqualTypeOf<typeof STATES[number]>()
    expectTypeOf<ClosedBy>().toEqualTypeOf<typeof CLOSED_BY[number]>()
    // The orders wsDump takes are the ones the argument check knows.
    expectTypeOf<DumpOrder>().toEqualTypeOf<typeof DUMP_ORDERS[number]>()
    assert.deepEqual([...DUMP_ORDERS], ['id_hash', 'used_desc', 'used_asc'])
    expectTypeOf<WsData>().toEqualTypeOf<string | Buffer | Uint8Array>()
    expectTypeOf<Buffer>().toMatchTypeOf<WsData>()
    expectTypeOf<ArrayBuffer>().not.toMatchTypeOf<WsData>()
  })

  test('the shapes, field by field', () => {
    expectTypeOf<keyof ConnectionInfo>().toEqualTypeOf<typeof INFO_KEYS[number]>()
    expectTypeOf<ConnectionInfo>().toMatchTypeOf<Required<ConnectionAddress>>()
    expectTypeOf<ConnectionInfo['state']>().toEqualTypeOf<ConnectionState>()
    expectTypeOf<ConnectionAddress['socketAddress']>().toEqualTypeOf<string | undefined>()
    expectTypeOf<ConnectionInfo['socketAddress']>().toEqualTypeOf<string>()
    expectTypeOf<ConnectionInfo['transport']>().toEqualTypeOf<'ws' | 'wss'>()
    expectTypeOf<DumpResult>().toEqualTypeOf<{ connections: ConnectionInfo[], wscounter: number, truncated: boolean }>()
    // Each event's fields, and `log` (kept out of its keys at run time).
    expectTypeOf<keyof WsOpenEvent>().toEqualTypeOf<typeof OPEN_KEYS[number] | 'log'>()
    expectTypeOf<WsOpenEvent['log']>().toEqualTypeOf<FastifyBaseLogger>()
    expectTypeOf<WsMessage['log']>().toEqualTypeOf<FastifyBaseLogger>()
    expectTypeOf<WsClosedEvent['log']>().toEqualTypeOf<FastifyBaseLogger>()
    expectTypeOf<WsOpenEvent['request']>().toEqualTypeOf<FastifyRequest>()
    expectTypeOf<keyof WsClosedEvent>().toEqualTypeOf<typeof CLOSED_KEYS[number] | 'log'>()
    expectTypeOf<WsClosedEvent['by']>().toEqualTypeOf<ClosedBy>()
    expectTypeOf<keyof WsMessage>().toEqualTypeOf<typeof MESSAGE_KEYS[number] | 'log'>()
    expectTypeOf<WsTextMessage['data']>().toEqualTypeOf<string>()
    expectTypeOf<WsBinaryMessage['data']>().toEqualTypeOf<Buffer>()
    expectTypeOf<Extract<WsMessage, { binary: false }>>().toEqualTypeOf<WsTextMessage>()
  })

  test('the statistics: every total and per-protocol name, and nothing else', () => {
    expectTypeOf<ProtocolStatName>().toEqualTypeOf<typeof PROTOCOL_STATS[number]>()
    expectTypeOf<TotalStatName>().toEqualTypeOf<typeof TOTAL_STATS[number]>()
    expectTypeOf<StatsSnapshot['ws_handshake_timeouts']>().toEqualTypeOf<number>()
    expectTypeOf<StatsSnapshot['ws_msrp_received_frames']>().toEqualTypeOf<number>()
    expectTypeOf<StatsSnapshot['ws_json_received_frames']>().toEqualTypeOf<number>()
    expectTypeOf<StatsSnapshot>().toHaveProperty('ws_sip_current_connections')
    expectTypeOf<StatsSnapshot>().not.toHaveProperty('ws_sip_failed_handshakes')
    expectTypeOf<StatsSnapshot>().not.toHaveProperty('ws_received')
  })

  test('real values have exactly the fields their types name', async () => {
    const opened: WsOpenEvent[] = []
    const messages: WsMessage[] = []
    let onClosed: (e: WsClosedEvent) => void = () => {}
    const gone = new Promise<WsClosedEvent>((resolve) => { onClosed = resolve })
    let onMessages: () => void = () => {}
    const twoMessages = new Promise<void>((resolve) => { onMessages = resolve })
    const s = await startApp({ subProtocols: ['sip', 'json'] }, (app) => {
      app.addWsHook('websocket:open', (e) => { opened.push(e) })
      app.addWsHook('websocket:message', (m) => { if (messages.push(m) === 2) onMessages() })
      app.addWsHook('websocket:closed', (e) => { onClosed(e) })
    })
    try {
      const ws = await connect(s.url, 'json')
      ws.send('text')
      ws.send(Buffer.from([1]))
      await twoMessages
      const info = s.app.wsDump().connections[0]
      assert.deepEqual(sorted(Object.keys(info)), sorted(INFO_KEYS))
      assert.ok((STATES as readonly string[]).includes(info.state))
      assert.deepEqual(sorted(Object.keys(opened[0])), sorted(OPEN_KEYS))
      for (const m of messages) assert.deepEqual(sorted(Object.keys(m)), sorted(MESSAGE_KEYS))
      assert.deepEqual(messages.map((m) => [m.binary, typeof m.data === 'string' ? 'string' : Buffer.isBuffer(m.data) ? 'Buffer' : typeof m.data]), [[false, 'string'], [true, 'Buffer']])
      const names = sorted(Object.keys(s.app.wsStats()))
      const expected = [...TOTAL_STATS.map((n) => `ws_${n}`), ...['sip', 'msrp', 'json'].flatMap((p) => PROTOCOL_STATS.map((n) => `ws_${p}_${n}`))]
      assert.deepEqual(names, sorted(expected))
      ws.close(4000, 'done')
      const event = await gone
      assert.deepEqual(sorted(Object.keys(event)), sorted(CLOSED_KEYS))
      assert.ok((CLOSED_BY as readonly string[]).includes(event.by))
    } finally {
      await s.app.close()
    }
  })

  test('types.ts imports nothing of the package, so any file may import it without a cycle', () => {
    const path = join(__dirname, '..', '..', 'lib', 'types.ts')
    const file = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.ES2022, true)
    const specifiers = file.statements.filter(ts.isImportDeclaration).map((d) => (d.moduleSpecifier as ts.StringLiteral).text)
    assert.deepEqual(specifiers, ['fastify'])
    assert.equal(file.statements.filter((s) => ts.isExportDeclaration(s) && s.moduleSpecifier !== undefined).length, 0, 'no re-exports either')
  })
})
