import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import WebSocket from 'ws'
import { checkTarget } from '../../../lib/lwsc/target'
import { startPeer } from '../../helpers/lwsc'

function rejects (url: unknown, proto: unknown, code: string, named: string): void {
  assert.throws(() => { checkTarget(url, proto) }, (err: Error & { code?: string, statusCode?: number, url?: string }) => {
    assert.equal(err.code, code, `${String(url)} ${String(proto)}: ${err.message}`)
    assert.equal(err.statusCode, 400, 'the caller\'s argument is wrong: 400')
    assert.equal(err.url, named, 'the error names the URL as given')
    return true
  })
}

describe('checkTarget', () => {
  // An empty fragment is no fragment: the URL parser (and ws) see none.
  test('a ws:// or wss:// URL with a host passes, whatever its port, path or query', () => {
    for (const url of ['ws://127.0.0.1/', 'ws://127.0.0.1:8080', 'wss://sip.example.com:443/ws?token=a%20b', 'ws://[::1]:5060/x/y', 'WS://LOCALHOST/', 'ws://user:pw@host/', 'ws://127.0.0.1/#']) {
      assert.doesNotThrow(() => { checkTarget(url, 'sip') }, url)
    }
  })

  test('anything else is FST_SIPWS_LWSC_BAD_URL naming the URL', () => {
    for (const url of ['http://127.0.0.1/', 'https://127.0.0.1/', 'ftp://127.0.0.1/', 'not a url', '', 'ws://', 'ws://127.0.0.1/#frag', 'wss://[::1', '127.0.0.1:8080', 'ws:/']) {
      rejects(url, 'sip', 'FST_SIPWS_LWSC_BAD_URL', url)
    }
  })

  test('a URL that is no string is refused too, named as its text', () => {
    for (const url of [undefined, null, 42, { href: 'ws://127.0.0.1/' }, new URL('ws://127.0.0.1/')]) {
      rejects(url, 'sip', 'FST_SIPWS_LWSC_BAD_URL', String(url))
    }
  })

  test('the sub-protocol must be an RFC 7230 token: FST_SIPWS_INVALID_ARGUMENT naming "proto" and the URL', () => {
    for (const proto of ['sip', 'kmsg', 'x.y-z_1', "!#$%&'*+.^_`|~"]) assert.doesNotThrow(() => { checkTarget('ws://127.0.0.1/', proto) }, proto)
    for (const proto of ['', 'two words', 'sip,msrp', 'sip;v=2', 'é', '"sip"', 'a/b', undefined, null, 5, ['sip']]) {
      rejects('ws://127.0.0.1/', proto, 'FST_SIPWS_INVALID_ARGUMENT', 'ws://127.0.0.1/')
    }
    assert.throws(() => { checkTarget('ws://127.0.0.1/', 'two words') }, { message: 'Invalid argument "proto": expected a sub-protocol name (an RFC 7230 token), got "two words"' })
    assert.throws(() => { checkTarget('ws://127.0.0.1/', undefined) }, { message: /got undefined$/ })
  })

  test('the URL is checked before the sub-protocol', () => {
    rejects('http://127.0.0.1/', 'two words', 'FST_SIPWS_LWSC_BAD_URL', 'http://127.0.0.1/')
  })

  test('what it lets through, ws opens: a real server sees the path, query and token sub-protocol', async (t) => {
    const peer = await startPeer()
    t.after(async () => { await peer.close() })
    const paths: Array<string | undefined> = []
    peer.wss.on('connection', (_ws, req) => { paths.push(req.url) })
    const base = peer.url.replace(/\/$/, '')
    const targets: Array<[string, string]> = [[`${base}/edge?x=1`, 'sip'], [`ws://[::1]:${peer.port}/`, 'kmsg'], [`${base}`, "!#$%&'*+.^_`|~"]]
    // The server listens on 127.0.0.1 only: [::1] does not answer, yet ws takes it as a target.
    for (const [url, proto] of targets) {
      checkTarget(url, proto)
      const ws = new WebSocket(url, proto)
      const outcome = await new Promise<string>((resolve) => {
        ws.once('open', () => { resolve('open') })
        ws.once('error', (err: NodeJS.ErrnoException) => { resolve(err.code ?? err.message) })
      })
      // A socket error (refused, or no IPv6 here), not ws refusing the URL.
      if (url.includes('[::1]')) assert.match(outcome, /^E[A-Z]+$/, url)
      else {
        assert.equal(outcome, 'open', url)
        assert.equal(ws.protocol, proto)
      }
      ws.terminate()
    }
    assert.deepEqual(peer.handshakes.map((h) => h.protocol), ['sip', "!#$%&'*+.^_`|~"])
    assert.deepEqual(paths, ['/edge?x=1', '/'])
  })
})
