import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CID_PARAM, ProxyVia } from '../../../example/proxy/proxy-via'
import { SipRequest, SipResponse } from '../../../example/sip/message'
import { parseSip } from '../../../example/sip/parse'
import { topVia } from '../../../example/sip/via'
import { makeId, prefixOf } from '../../../lib/cluster/ids'

// Cluster-mode connection ids (lib/cluster/ids.ts) name their slot in the high bits: most are 16 digits
// long and past 2^48. The example's Via `cid` must carry them whole.
const IDS = [1, 2 ** 48 - 1, 2 ** 48, makeId(prefixOf({ slot: 200, epoch: 123456 }), 7), makeId(prefixOf({ slot: 255, epoch: 2 ** 22 - 1 }), 2 ** 23 - 1)]

function request (method = 'MESSAGE', branch = 'z9hG4bKabc'): SipRequest {
  const message = parseSip(`${method} sip:bob@h SIP/2.0\r\nVia: SIP/2.0/WS a.invalid;branch=${branch}\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:bob@h>\r\nCall-ID: c\r\nCSeq: 1 ${method}\r\nContent-Length: 0\r\n\r\n`)
  assert.ok(message instanceof SipRequest)
  return message
}

/** The response a UAS sends back: the request's Via lines, in order. */
const answer = (sent: SipRequest): SipResponse => new SipResponse(200, 'OK', sent.headers.filter((h) => h.name.toLowerCase() === 'via'))

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

test('the Via made: the transport, sent-by, a magic-cookie branch, the cid and any extra parameters; popped, the sender\'s Via is on top', () => {
  const via = new ProxyVia(Buffer.alloc(32, 3))
  const sent = request()
  sent.prepend('Via', via.make(sent, 'UDP', '127.0.0.1:5070', 'core', ';rport'))
  const top = topVia(sent)
  assert.equal(top?.protocol, 'SIP/2.0/UDP')
  assert.equal(top?.host, '127.0.0.1')
  assert.match(top?.params.get('branch') ?? '', /^z9hG4bK[A-Za-z0-9_-]{22}$/)
  assert.equal(top?.params.get(CID_PARAM), 'core')
  assert.equal(top?.params.has('rport'), true)
  const response = answer(sent)
  assert.deepEqual(via.pop(response), { source: 'core' })
  assert.equal(topVia(response)?.host, 'a.invalid')
})

test('a CANCEL gets the branch of its INVITE (same source, same sender branch); another source or sender branch does not', () => {
  const via = new ProxyVia(Buffer.alloc(32, 4))
  const branch = (sent: SipRequest, source: number): string | null | undefined => {
    sent.prepend('Via', via.make(sent, 'WS', 'h:1', source))
    return topVia(sent)?.params.get('branch')
  }
  const invite = branch(request('INVITE'), 7)
  assert.equal(branch(request('CANCEL'), 7), invite)
  assert.notEqual(branch(request('CANCEL'), 8), invite)
  assert.notEqual(branch(request('CANCEL', 'z9hG4bKother'), 7), invite)
})

test('pop: a Via that is not ours is left in place; one whose cid or branch was changed is forged', () => {
  const via = new ProxyVia(Buffer.alloc(32, 5))
  const plain = answer(request())
  assert.deepEqual(via.pop(plain), { problem: 'not ours' })
  assert.equal(plain.getAll('via').length, 1, 'nothing popped')
  for (const cid of ['x', '12345678901234567', '9007199254740993']) {
    const sent = request()
    sent.prepend('Via', `SIP/2.0/WS h:1;branch=z9hG4bKx;${CID_PARAM}=${cid}`)
    assert.deepEqual(via.pop(answer(sent)), { problem: 'not ours' }, cid)
  }
  const sent = request()
  sent.prepend('Via', via.make(sent, 'WS', 'h:1', 7))
  const steered = answer(sent)
  steered.headers[0].value = steered.headers[0].value.replace(`${CID_PARAM}=7`, `${CID_PARAM}=8`)
  assert.deepEqual(via.pop(steered), { problem: 'forged' })
  const other = new ProxyVia(Buffer.alloc(32, 6))
  assert.deepEqual(other.pop(answer(sent)), { problem: 'forged' }, 'another key')
  const alone = new SipResponse(200, 'OK', [{ name: 'Via', value: via.make(request(), 'WS', 'h:1', 7) }])
  assert.deepEqual(via.pop(alone), { problem: 'forged' }, 'no Via of the sender under ours')
})
