import assert from 'node:assert/strict'
import { test } from 'node:test'
import { FlowTokens } from '../../../example/core/flow-token'
import { makeId, prefixOf } from '../../../lib/cluster/ids'

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

test('a token altered, cut or made up reads as null', () => {
  const tokens = new FlowTokens(Buffer.alloc(32, 1))
  const token = tokens.make(42)
  const flipped = (token[0] === 'A' ? 'B' : 'A') + token.slice(1)
  for (const bad of [flipped, token.slice(1), `${token}A`, 'x'.repeat(24), '', 'not a token at all!!!!!!']) assert.equal(tokens.read(bad), null, bad)
})
