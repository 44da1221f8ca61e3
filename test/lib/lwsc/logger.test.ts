import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { FastifyBaseLogger } from 'fastify'
import { expectTypeOf } from 'expect-type'
import pino, { type Logger } from 'pino'
import { silentLogger, type LwscLogger } from '../../../lib/lwsc/logger'

describe('LwscLogger', () => {
  test('silentLogger takes every call and says nothing; it cannot be changed', () => {
    for (const level of ['debug', 'info', 'warn', 'error'] as const) {
      assert.equal(typeof silentLogger[level], 'function', level)
      assert.equal(silentLogger[level]({ url: 'ws://x/' }, 'lwsc: something'), undefined)
      assert.equal(silentLogger[level]({}), undefined)
    }
    assert.ok(Object.isFrozen(silentLogger), 'one shared instance nobody may swap a method of')
  })

  test('a pino logger fits as it is: fields first, then the message', () => {
    const lines: Array<Record<string, unknown>> = []
    const log: LwscLogger = pino({ level: 'debug' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } })
    log.debug({ url: 'ws://127.0.0.1:1/', proto: 'kmsg' }, 'lwsc: connecting')
    log.warn({ count: 2 }, 'lwsc: notifications not delivered')
    log.error({ n: 1 })
    assert.deepEqual(lines.map((l) => [l.level, l.msg]), [[20, 'lwsc: connecting'], [40, 'lwsc: notifications not delivered'], [50, undefined]])
    assert.deepEqual([lines[0].url, lines[0].proto, lines[1].count], ['ws://127.0.0.1:1/', 'kmsg', 2])
  })

  test('types: Fastify\'s logger and pino\'s fit; a logger without a level does not', () => {
    expectTypeOf<FastifyBaseLogger>().toMatchTypeOf<LwscLogger>()
    expectTypeOf<Logger>().toMatchTypeOf<LwscLogger>()
    expectTypeOf(silentLogger).toEqualTypeOf<LwscLogger>()
    expectTypeOf<Omit<LwscLogger, 'error'>>().not.toMatchTypeOf<LwscLogger>()
    expectTypeOf<LwscLogger['info']>().parameters.toEqualTypeOf<[obj: object, msg?: string]>()
  })
})
