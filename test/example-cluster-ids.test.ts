import assert from 'node:assert/strict'
import { test } from 'node:test'
import { FlowTokens } from '../example/flow-token'
import { ProxyVia } from '../example/proxy-via'
import { parseSip, SipRequest, SipResponse } from '../example/sip-message'
import { makeId, prefixOf } from '../lib/cluster/ids'

// Cluster-mode connection ids (lib/cluster/ids.ts) name their slot in the high bits: most are 16 digits
// long and past 2^48. The example's Via `cid` and flow tokens must carry them whole.
const IDS = [1, 2 ** 48 - 1, 2 ** 48, makeId(prefixOf({ slot: 200, epoch: 123456 }), 7), makeId(prefixOf({ slot: 255, epoch: 2 ** 22 - 1 }), 2 ** 23 - 1)]

test('a flow token names any cluster-mode id, is 24 characters long, and reads back only under its key', () => {
  const tokens = new FlowTokens(Buffer.alloc(32, 1))
  const other = new FlowTokens(Buffer.alloc(32, 2))
  assert.equal(IDS.at(-1), Number.MAX_SAFE_INTEGER)
  for (const id of IDS) {
    const token = tokens.make(id)
    assert.match(token, /^[A-Za-z0-9_-]{24}$/)
    assert.equal(tokens.read(token), id)
    assert.equal(other.read(token), null)
  }
})

test('a response finds its way back by a Via cid of any cluster-mode id', () => {
  const via = new ProxyVia(Buffer.alloc(32, 3))
  for (const id of IDS) {
    const request = parseSip('MESSAGE sip:bob@h SIP/2.0\r\nVia: SIP/2.0/WS a.invalid;branch=z9hG4bKabc\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:bob@h>\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n')
    assert.ok(request instanceof SipRequest)
    request.prepend('Via', via.make(request, 'WS', '127.0.0.1:8080', id))
    const response = new SipResponse(200, 'OK', request.headers.filter((h) => h.name.toLowerCase() === 'via'))
    assert.deepEqual(via.pop(response), { source: id })
  }
})
