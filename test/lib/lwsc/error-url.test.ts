import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { expectTypeOf } from 'expect-type'
import { InvalidArgumentError, LwscClosedError, LwscConnectTimeoutError } from '../../../lib/errors'
import { withUrl, type LwscError } from '../../../lib/lwsc/error-url'

describe('withUrl', () => {
  test('names the target on the error itself, keeping its class, code, status and message', () => {
    const err = new LwscConnectTimeoutError('ws://127.0.0.1:9/', 300)
    const named = withUrl(err, 'ws://127.0.0.1:9/')
    assert.equal(named, err, 'the same error, not a copy: its stack still points where it was made')
    assert.ok(named instanceof LwscConnectTimeoutError)
    assert.ok(named instanceof Error)
    assert.equal(named.url, 'ws://127.0.0.1:9/')
    assert.equal(named.code, 'FST_SIPWS_LWSC_CONNECT_TIMEOUT')
    assert.equal(named.statusCode, 504)
    assert.equal(named.message, 'lwsc: connecting to ws://127.0.0.1:9/ timed out after 300 ms')
    assert.ok(Object.keys(named).includes('url'), 'an own, enumerable field: loggers print it')
  })

  test('any of the package\'s errors can carry a URL; a second call names the latest', () => {
    const err = withUrl(new InvalidArgumentError('"proto"', 'expected a token'), 'ws://a/')
    assert.equal(err.url, 'ws://a/')
    assert.equal(err.statusCode, 400)
    withUrl(err, 'ws://b/')
    assert.equal(err.url, 'ws://b/')
  })

  test('types: the error keeps its own type, with `url` added; LwscError has a string code and url', () => {
    const named = withUrl(new LwscClosedError('ws://x/'), 'ws://x/')
    expectTypeOf(named).toMatchTypeOf<InstanceType<typeof LwscClosedError>>()
    expectTypeOf(named.url).toEqualTypeOf<string>()
    expectTypeOf(named).toMatchTypeOf<LwscError>()
    expectTypeOf<LwscError['url']>().toEqualTypeOf<string>()
    expectTypeOf<LwscError['code']>().toEqualTypeOf<string>()
    expectTypeOf<LwscError>().toMatchTypeOf<Error>()
    // @ts-expect-error only the package's (FastifyError) errors
    withUrl(new Error('plain'), 'ws://x/')
  })
})
