import assert from 'node:assert/strict'
import { test } from 'node:test'
import { PendingAnswers } from '../../../example/proxy/pending-answers'

// `lastUsed` is the plugin's: the last frame either way, in ms. Times here are made up.

test('a request is awaited until a frame goes to its connection afterwards', () => {
  const pending = new PendingAnswers()
  assert.equal(pending.awaits(1, 100), false, 'a connection that sent nothing is owed nothing')
  pending.heard(1, true, 100)
  assert.equal(pending.awaits(1, 100), true, 'lastUsed is the request itself')
  assert.equal(pending.awaits(1, 105), false, 'something went to it at 105: its answer')
})

test('a message of its own after the request hides nothing: still awaited until a frame goes to it', () => {
  const pending = new PendingAnswers()
  pending.heard(2, true, 100)
  // It answered someone else's request at 103 (a response asks nothing).
  pending.heard(2, false, 103)
  assert.equal(pending.awaits(2, 103), true, 'lastUsed is its own response: no evidence of an answer')
  assert.equal(pending.awaits(2, 110), false)
  assert.equal(pending.awaits(2, 110), false, 'the evidence is kept')
})

test('an ACK asks nothing; a request sent on later (from parking) asks again; closed forgets', () => {
  const pending = new PendingAnswers()
  pending.heard(3, false, 100)
  assert.equal(pending.awaits(3, 100), false)
  pending.heard(3, true, 200)
  assert.equal(pending.awaits(3, 210), false)
  assert.equal(pending.awaits(3, 210, 300), true, 'sent on at 300, nothing went to it since')
  assert.equal(pending.awaits(3, 320, 300), false)
  pending.closed(3)
  assert.equal(pending.awaits(3, 1000), false)
})

test('lastWentTo: whether the last frame went to the connection rather than came from it', () => {
  const pending = new PendingAnswers()
  assert.equal(pending.lastWentTo(4, 50), true, 'it never sent anything: every frame went to it')
  pending.heard(4, true, 100)
  assert.equal(pending.lastWentTo(4, 100), false, 'its own request')
  assert.equal(pending.lastWentTo(4, 104), true, 'the answer')
})

test('an answer this node sends in the same millisecond (a synchronous reply, whose frame time is the request\'s) is seen too', () => {
  const pending = new PendingAnswers()
  pending.heard(5, true, 100)
  pending.sent(5, 100)
  assert.equal(pending.awaits(5, 100), false)
  assert.equal(pending.lastWentTo(5, 100), true)
  pending.sent(6, 100)
  assert.equal(pending.awaits(6, 100), false, 'a connection never heard from is owed nothing')
})
