import assert from 'node:assert/strict'
import { test } from 'node:test'
import { WORKER_INDEX, workerCount } from '../../example/workers'
import { optionsFromEnv } from '../../example/options'

test('WORKERS a count, above 1 only with REDIS_URL', () => {
  assert.equal(workerCount(undefined, undefined), 1)
  assert.equal(workerCount('1', undefined), 1)
  assert.equal(workerCount('4', 'redis://127.0.0.1:6379'), 4)
  assert.throws(() => workerCount('2', undefined), /WORKERS=2 .*set REDIS_URL/)
  assert.throws(() => workerCount('two', undefined), /WORKERS must be a whole number from 1 to 256/)
})

test('WORKERS: empty is one; 0 and 257 are refused', () => {
  assert.equal(workerCount('', undefined), 1)
  assert.throws(() => workerCount('0', 'redis://127.0.0.1:6379'), /^Error: WORKERS must be a whole number from 1 to 256, got "0"$/)
  assert.throws(() => workerCount('257', 'redis://127.0.0.1:6379'), /got "257"/)
})

test('a worker\'s index is read from the variable the primary sets', () => {
  assert.equal(WORKER_INDEX, 'WORKER_INDEX')
  assert.equal(optionsFromEnv({ SIP_CORE: 'udp:127.0.0.1:5060', [WORKER_INDEX]: '2' }).sipListen, 'udp:127.0.0.1:5072')
})
