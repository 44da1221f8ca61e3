import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import pino from 'pino'
import { Connection } from '../../../lib/connection/connection'
import { MessageEvent } from '../../../lib/connection/message-event'
import { Stats } from '../../../lib/connection/stats'

function connection (log: pino.Logger | null): Connection {
  const address = { remoteAddress: '192.0.2.7', remotePort: 5060, localAddress: '127.0.0.1', localPort: 80, transport: 'ws' as const }
  return new Connection(42, address, 'sip', null, new Stats(['sip']).forProtocol('sip'), Date.now(), 'req-7', log)
}

describe('MessageEvent', () => {
  test('the fields a hook reads, text as a string and binary as the Buffer; `log` outside the keys', () => {
    const lines: Array<Record<string, unknown>> = []
    const conn = connection(pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } }))
    const text = new MessageEvent(conn, Buffer.from('OPTIONS sip:a SIP/2.0'), false)
    const bytes = Buffer.from([1, 2, 3])
    const binary = new MessageEvent(conn, bytes, true)
    assert.deepEqual({ ...text }, { id: 42, data: 'OPTIONS sip:a SIP/2.0', binary: false, subProtocol: 'sip', remoteAddress: '192.0.2.7', remotePort: 5060 })
    assert.equal(binary.data, bytes)
    assert.deepEqual(Object.keys(binary), ['id', 'data', 'binary', 'subProtocol', 'remoteAddress', 'remotePort'])
    assert.equal(JSON.stringify(text), '{"id":42,"data":"OPTIONS sip:a SIP/2.0","binary":false,"subProtocol":"sip","remoteAddress":"192.0.2.7","remotePort":5060}')
    assert.equal(text.log, binary.log, 'one logger per connection, made once')
    text.log.info('seen')
    assert.deepEqual([lines[0].reqId, lines[0].connId, lines[0].msg], ['req-7', 42, 'seen'])
  })

  test('a connection made without a logger (a synthetic entry) says so when asked for one', () => {
    const event = new MessageEvent(connection(null), Buffer.from('x'), false)
    assert.throws(() => event.log, /connection 42 has no logger/)
  })
})
