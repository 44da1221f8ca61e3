import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { DEFAULT_SIP_LISTEN, optionsFromEnv, sipAddresses } from '../../example/options'

describe('the example\'s cluster settings from the environment', () => {
  test('REDIS_URL must be a redis:// URL', () => {
    assert.equal(optionsFromEnv({ REDIS_URL: 'redis://127.0.0.1:6379' }).redisUrl, 'redis://127.0.0.1:6379')
    assert.equal(optionsFromEnv({ REDIS_URL: '' }).redisUrl, undefined)
    assert.throws(() => optionsFromEnv({ REDIS_URL: '127.0.0.1:6379' }), /REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL/)
  })

  test('SIP_ADVERTISE is read as it is; under WORKERS, worker i advertises its port + i', () => {
    const core = { SIP_CORE: 'udp:127.0.0.1:5060', SIP_ADVERTISE: '192.0.2.10:5070' }
    assert.equal(optionsFromEnv(core).sipAdvertise, '192.0.2.10:5070')
    assert.equal(optionsFromEnv({ ...core, WORKER_INDEX: '2' }).sipAdvertise, '192.0.2.10:5072')
    assert.equal(optionsFromEnv({ ...core, SIP_ADVERTISE: '[::1]:6000', WORKER_INDEX: '1' }).sipAdvertise, '[::1]:6001')
    assert.equal(optionsFromEnv({ SIP_CORE: 'udp:127.0.0.1:5060' }).sipAdvertise, undefined)
  })

  test('under WORKERS, worker i listens towards the core on SIP_LISTEN\'s port + i', () => {
    const core = { SIP_CORE: 'udp:127.0.0.1:5060' }
    assert.equal(optionsFromEnv({ ...core, WORKER_INDEX: '0' }).sipListen, 'udp:127.0.0.1:5070')
    assert.equal(optionsFromEnv({ ...core, WORKER_INDEX: '3' }).sipListen, 'udp:127.0.0.1:5073')
    assert.equal(optionsFromEnv({ ...core, SIP_LISTEN: 'tcp:[::1]:6000', WORKER_INDEX: '1' }).sipListen, 'tcp:[::1]:6001')
    assert.equal(optionsFromEnv({ ...core, SIP_LISTEN: 'udp:127.0.0.1:0', WORKER_INDEX: '1' }).sipListen, 'udp:127.0.0.1:0', 'port 0: each picks its own')
  })
})

describe('the example\'s other settings from the environment', () => {
  test('defaults: 127.0.0.1:8080, log level info, nothing else set', () => {
    assert.deepEqual(optionsFromEnv({}), {
      host: '127.0.0.1',
      port: 8080,
      logger: { level: 'info' },
      eventsUrl: undefined,
      allowedOrigins: undefined,
      allowedHosts: undefined,
      keepaliveTimeout: undefined,
      drainWithin: undefined,
      rpcToken: undefined,
      sipCore: undefined,
      sipListen: undefined,
      sipAdvertise: undefined,
      redisUrl: undefined
    })
  })

  test('lists are comma-separated and trimmed; milliseconds are whole numbers; empty means unset', () => {
    const options = optionsFromEnv({ HOST: '::', PORT: '0', LOG_LEVEL: 'debug', ALLOWED_ORIGINS: ' http://a.example , ,http://b.example', ALLOWED_HOSTS: '', KEEPALIVE_TIMEOUT: '15000', DRAIN_MS: '0', RPC_TOKEN: 's3cret', EVENTS_URL: 'ws://127.0.0.1:9/events' })
    assert.equal(options.host, '::')
    assert.equal(options.port, 0)
    assert.deepEqual(options.logger, { level: 'debug' })
    assert.deepEqual(options.allowedOrigins, ['http://a.example', 'http://b.example'])
    assert.equal(options.allowedHosts, undefined)
    assert.equal(options.keepaliveTimeout, 15000)
    assert.equal(options.drainWithin, 0)
    assert.equal(options.rpcToken, 's3cret')
    assert.equal(options.eventsUrl, 'ws://127.0.0.1:9/events')
  })

  test('a bad PORT or duration is refused, naming the variable and the value', () => {
    assert.throws(() => optionsFromEnv({ PORT: '70000' }), /^Error: PORT must be a port number, got "70000"$/)
    assert.throws(() => optionsFromEnv({ KEEPALIVE_TIMEOUT: '1.5' }), /^Error: KEEPALIVE_TIMEOUT must be a whole number of milliseconds, got "1.5"$/)
    assert.throws(() => optionsFromEnv({ DRAIN_MS: '-1' }), /^Error: DRAIN_MS must be a whole number of milliseconds, got "-1"$/)
  })

  test('SIP_CORE alone listens on the default SIP_LISTEN', () => {
    assert.equal(optionsFromEnv({ SIP_CORE: 'udp:127.0.0.1:5060' }).sipListen, DEFAULT_SIP_LISTEN)
    assert.equal(optionsFromEnv({}).sipListen, undefined)
  })
})

describe('sipAddresses: the core and the edge\'s address towards it', () => {
  test('none without a core; both parsed with one; SIP_LISTEN defaults', () => {
    assert.equal(sipAddresses({}), null)
    assert.deepEqual(sipAddresses({ sipCore: 'tcp:127.0.0.1:5060' }), { core: { transport: 'tcp', host: '127.0.0.1', port: 5060 }, listen: { transport: 'udp', host: '127.0.0.1', port: 5070 }, advertise: null })
    assert.deepEqual(sipAddresses({ sipCore: 'udp:127.0.0.1:5060', sipListen: 'tcp:127.0.0.1:5070', sipAdvertise: '[::1]:6000' })?.advertise, { transport: 'tcp', host: '::1', port: 6000 }, 'SIP_ADVERTISE: the transport is SIP_LISTEN\'s')
    assert.deepEqual(sipAddresses({ sipCore: 'udp:[::1]:5060', sipListen: 'udp:[::1]:0' })?.listen, { transport: 'udp', host: '::1', port: 0 })
  })

  test('a listen address without a core, or a bad address, is refused with the setting\'s name', () => {
    assert.throws(() => sipAddresses({ sipListen: 'udp:127.0.0.1:5070' }), /^Error: sipListen \(SIP_LISTEN\) is the edge's address towards a core: set sipCore \(SIP_CORE\) too$/)
    assert.throws(() => sipAddresses({ sipAdvertise: '127.0.0.1:5070' }), /^Error: sipAdvertise \(SIP_ADVERTISE\) is the edge's address towards a core/)
    assert.throws(() => sipAddresses({ sipCore: 'udp:127.0.0.1:5060', sipAdvertise: 'edge.example:5070' }), /^Error: sipAdvertise \(SIP_ADVERTISE\) must be/)
    assert.throws(() => sipAddresses({ sipCore: 'udp:core.example:5060' }), /^Error: sipCore \(SIP_CORE\) must be udp:IP:PORT/)
    assert.throws(() => sipAddresses({ sipCore: 'udp:127.0.0.1:5060', sipListen: 'sctp:127.0.0.1:5070' }), /^Error: sipListen \(SIP_LISTEN\) must be udp:IP:PORT/)
  })
})
