import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { expectTypeOf } from 'expect-type'
import * as lwsc from '../../../lib/lwsc'
import type { LwscError, LwscLogger, LwscOptions, LwscOptionsResolved, LwscStats } from '../../../lib/lwsc'
import * as pkg from '../../../lib'
import * as errors from '../../../lib/errors'
import { LwscClient } from '../../../lib/lwsc/client'
import type { LwscLogger as LoggerType } from '../../../lib/lwsc/logger'
import type { LwscStats as StatsType } from '../../../lib/lwsc/stats'

// Each error the client rejects with, its code and HTTP status.
const ERRORS = {
  LwscBadUrlError: ['FST_SIPWS_LWSC_BAD_URL', 400],
  LwscClosedError: ['FST_SIPWS_LWSC_CLOSED', 503],
  LwscConnectionError: ['FST_SIPWS_LWSC_CONNECTION_FAILED', 502],
  LwscConnectTimeoutError: ['FST_SIPWS_LWSC_CONNECT_TIMEOUT', 504],
  LwscProtocolRefusedError: ['FST_SIPWS_LWSC_PROTOCOL_REFUSED', 502],
  LwscQueueFullError: ['FST_SIPWS_LWSC_QUEUE_FULL', 503],
  LwscReadTimeoutError: ['FST_SIPWS_LWSC_READ_TIMEOUT', 504]
} as const

describe('lwsc entry point', () => {
  test('exports the client and its errors, and nothing else at run time', () => {
    assert.deepEqual(Object.keys(lwsc).sort(), ['LwscClient', ...Object.keys(ERRORS)].sort())
    assert.equal(lwsc.LwscClient, LwscClient)
    assert.equal(lwsc.LwscClient, pkg.LwscClient, 'the package exports the same class')
  })

  test('the errors are the package\'s own, with their codes and statuses', () => {
    for (const [name, [code, status]] of Object.entries(ERRORS)) {
      const Err = lwsc[name as keyof typeof ERRORS]
      assert.equal(Err, errors[name as keyof typeof ERRORS], name)
      assert.equal(Err, pkg.errors[name as keyof typeof ERRORS], `${name} under the package's errors`)
      const err = new Err('ws://127.0.0.1:1/', 'x')
      assert.ok(err instanceof Error)
      assert.deepEqual([err.code, err.statusCode], [code, status], name)
      assert.match(err.message, /^lwsc: .*ws:\/\/127\.0\.0\.1:1\//, name)
    }
  })

  test('types: the client\'s options, stats, logger and errors', () => {
    expectTypeOf<LwscLogger>().toEqualTypeOf<LoggerType>()
    expectTypeOf<LwscStats>().toEqualTypeOf<StatsType>()
    expectTypeOf<LwscOptions>().toEqualTypeOf<pkg.LwscOptions>()
    expectTypeOf<{ timeoutRead: 500, poolSize: 2, tls: { rejectUnauthorized: false } }>().toMatchTypeOf<LwscOptions>()
    expectTypeOf<{ timeoutRead: '500ms' }>().not.toMatchTypeOf<LwscOptions>()
    expectTypeOf<LwscOptionsResolved['timeoutRead']>().toEqualTypeOf<number>()
    expectTypeOf<LwscOptionsResolved['origin']>().toEqualTypeOf<string | undefined>()
    expectTypeOf<LwscError>().toMatchTypeOf<{ code: string, url: string, statusCode?: number }>()
    expectTypeOf<lwsc.LwscClient['options']>().toEqualTypeOf<Readonly<LwscOptionsResolved>>()
  })
})
