import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import * as errors from '../../lib/errors'

type ErrorClass = new (...args: unknown[]) => Error & { code: string, statusCode: number }
const classes = Object.entries(errors) as Array<[string, ErrorClass]>

// Each error made with arguments as the code passes them, and the message it must give: what was wrong,
// named.
const MADE: Record<string, { args: unknown[], message: string }> = {
  InvalidOptionError: { args: ['"cluster.nodeTimeout"', 'must be >= 1000'], message: 'Invalid option "cluster.nodeTimeout": must be >= 1000' },
  UnknownHookError: { args: ['websocket:nope', 'xhttp:request, websocket:open'], message: 'Unknown hook "websocket:nope"; expected one of xhttp:request, websocket:open' },
  HookNotFunctionError: { args: ['websocket:open', 'string'], message: 'The websocket:open hook must be a function, got string' },
  BadDumpOrderError: { args: ['nope'], message: 'Bad display order parameter: "nope"; expected id_hash, used_desc or used_asc' },
  BadConnectionIdError: { args: ['wsClose', 'undefined'], message: 'wsClose: expected a connection id (an integer), got undefined' },
  InvalidArgumentError: { args: ['"data"', 'expected a string, got number'], message: 'Invalid argument "data": expected a string, got number' },
  MissingInternalError: { args: ['kWebSocket', 'ws', 'not exported'], message: 'fastify-sip-ws relies on kWebSocket, which the installed ws lacks (not exported); install the versions its package.json allows' },
  LwscBadUrlError: { args: ['http://x'], message: 'lwsc: invalid WebSocket URL "http://x": expected ws:// or wss://' },
  LwscConnectTimeoutError: { args: ['ws://127.0.0.1:1/', 2000], message: 'lwsc: connecting to ws://127.0.0.1:1/ timed out after 2000 ms' },
  LwscReadTimeoutError: { args: ['ws://127.0.0.1:1/', 1500], message: 'lwsc: no reply from ws://127.0.0.1:1/ within 1500 ms' },
  LwscConnectionError: { args: ['ws://127.0.0.1:1/', 'ECONNREFUSED'], message: 'lwsc: connection to ws://127.0.0.1:1/ failed: ECONNREFUSED' },
  LwscProtocolRefusedError: { args: ['ws://127.0.0.1:1/', 'sip'], message: 'lwsc: ws://127.0.0.1:1/ refused sub-protocol "sip"' },
  LwscQueueFullError: { args: ['ws://127.0.0.1:1/', 1024], message: 'lwsc: queue for ws://127.0.0.1:1/ is full (1024 waiting)' },
  LwscClosedError: { args: ['ws://127.0.0.1:1/'], message: 'lwsc: client is closed; cannot send to ws://127.0.0.1:1/' },
  InvalidCloseError: { args: ['status', '1005 is not a close code an endpoint may send'], message: 'Invalid close status: 1005 is not a close code an endpoint may send' },
  InvalidDrainError: { args: ['within must be a whole number'], message: 'wsDrain: within must be a whole number' },
  ClusterUnavailableError: { args: ['Redis is not connected'], message: 'cluster: Redis is not connected' },
  ClusterTimeoutError: { args: [1000], message: 'cluster: no answer from the owning node within requestTimeout (1000 ms)' },
  ClusterNodeGoneError: { args: ['abc-12'], message: 'cluster: node abc-12 went away before it answered' }
}

/** The README's codes and statuses: its Errors table, with `FST_SIPWS_LWSC_*` read from the lwsc errors table. */
function documented (): { codes: Map<string, number>, lwscClasses: Map<string, string> } {
  const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8')
  const section = (heading: string): string => {
    const start = readme.indexOf(`\n${heading}\n`)
    assert.ok(start >= 0, `README has "${heading}"`)
    const end = readme.slice(start + heading.length + 2).search(/\n#{2,3} /)
    return readme.slice(start, end < 0 ? undefined : start + heading.length + 2 + end)
  }
  const codes = new Map<string, number>()
  const lwscClasses = new Map<string, string>()
  for (const row of section('### lwsc errors').split('\n').filter((l) => l.startsWith('| `FST_SIPWS_'))) {
    const [, code, cls, when] = row.split('|').map((c) => c.trim())
    const status = /\(status (\d{3})\)/.exec(when)
    assert.ok(status !== null, `lwsc row ${code} gives its status`)
    codes.set(code.replaceAll('`', ''), Number(status[1]))
    lwscClasses.set(code.replaceAll('`', ''), cls.replaceAll('`', ''))
  }
  for (const row of section('## Errors').split('\n').filter((l) => l.startsWith('| `FST_SIPWS_'))) {
    const [, names, status] = row.split('|').map((c) => c.trim())
    for (const code of names.split(',').map((n) => n.trim().replaceAll('`', ''))) {
      if (code === 'FST_SIPWS_LWSC_*') continue
      assert.ok(/^\d{3}$/.test(status), `${code}: one status in the Errors table, got ${status}`)
      const known = codes.get(code)
      assert.ok(known === undefined || known === Number(status), `${code}: the two tables agree`)
      codes.set(code, Number(status))
    }
  }
  return { codes, lwscClasses }
}

describe('errors', () => {
  test('every export is an error class with a stable FST_SIPWS_* code of its own', () => {
    assert.ok(classes.length >= 19)
    const codes = new Set<string>()
    for (const [name, Cls] of classes) {
      assert.equal(typeof Cls, 'function', name)
      assert.match(name, /Error$/)
      const err = new Cls(...MADE[name]?.args ?? [])
      assert.ok(err instanceof Error, name)
      assert.match(err.code, /^FST_SIPWS_[A-Z_]+$/, name)
      assert.equal(err.name, 'FastifyError')
      codes.add(err.code)
    }
    assert.equal(codes.size, classes.length, 'no two errors share a code')
  })

  test('each message names what was wrong, from the arguments it was made with', () => {
    assert.deepEqual(classes.map(([name]) => name).sort(), Object.keys(MADE).sort(), 'every error has a case here')
    for (const [name, Cls] of classes) {
      const { args, message } = MADE[name]
      assert.equal(new Cls(...args).message, message, name)
    }
  })

  test('status: 400 (and a TypeError) for a caller\'s argument, 500 for the app\'s set-up, 502-504 for a peer or Redis', () => {
    const statuses = Object.fromEntries(classes.map(([name, Cls]) => { const e = new Cls(...MADE[name].args); return [e.code, e.statusCode] }))
    assert.deepEqual(statuses, {
      FST_SIPWS_INVALID_OPTION: 500,
      FST_SIPWS_UNKNOWN_HOOK: 500,
      FST_SIPWS_HOOK_NOT_FUNCTION: 500,
      FST_SIPWS_MISSING_INTERNAL: 500,
      FST_SIPWS_BAD_DUMP_ORDER: 400,
      FST_SIPWS_BAD_CONNECTION_ID: 400,
      FST_SIPWS_INVALID_ARGUMENT: 400,
      FST_SIPWS_INVALID_CLOSE: 400,
      FST_SIPWS_INVALID_DRAIN: 400,
      FST_SIPWS_LWSC_BAD_URL: 400,
      FST_SIPWS_LWSC_CONNECT_TIMEOUT: 504,
      FST_SIPWS_LWSC_READ_TIMEOUT: 504,
      FST_SIPWS_LWSC_CONNECTION_FAILED: 502,
      FST_SIPWS_LWSC_PROTOCOL_REFUSED: 502,
      FST_SIPWS_LWSC_QUEUE_FULL: 503,
      FST_SIPWS_LWSC_CLOSED: 503,
      FST_SIPWS_CLUSTER_UNAVAILABLE: 503,
      FST_SIPWS_CLUSTER_TIMEOUT: 504,
      FST_SIPWS_CLUSTER_NODE_GONE: 503
    })
    for (const [name, Cls] of classes) {
      const err = new Cls(...MADE[name].args)
      if (err.statusCode === 400) assert.ok(err instanceof TypeError, `${name}: a wrong argument is a TypeError`)
      if (err.statusCode >= 502) assert.ok(!(err instanceof TypeError), `${name}: a failure elsewhere is no TypeError`)
    }
  })

  test('the README\'s tables list every code, with its status and class, and no other', () => {
    const { codes, lwscClasses } = documented()
    const actual = new Map(classes.map(([name, Cls]) => { const e = new Cls(...MADE[name].args); return [e.code, e.statusCode] }))
    assert.deepEqual([...codes.keys()].sort(), [...actual.keys()].sort())
    for (const [code, status] of codes) assert.equal(actual.get(code), status, `${code}: README says ${status}`)
    for (const [code, cls] of lwscClasses) {
      const Cls = (errors as unknown as Record<string, ErrorClass | undefined>)[cls]
      assert.ok(Cls !== undefined, `${cls} is exported`)
      assert.equal(new Cls(...MADE[cls].args).code, code)
    }
  })
})
