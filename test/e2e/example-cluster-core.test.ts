import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { after, before, describe, test } from 'node:test'
import * as JsSIP from 'jssip'
import type { RTCSession } from 'jssip/lib/RTCSession'
import { clusterOf } from '../helpers/cluster'
import { startKamailio, type Kamailio } from '../helpers/kamailio'
import { freePort } from '../helpers/lwsc'
import { startRedis, type RedisServer } from '../helpers/redis'
import { SIPP, SIPP_HINT, sippPassed, startSipp } from '../helpers/sipp'
import { startExample, within, type Example } from './helpers'
import { incomingCall, incomingMessage, installNodeWebRtc, NO_MEDIA, registered, sessionEvent, stop, userAgent } from './jssip-node'
import { CORE_CFG, coreContacts, tokenOf } from './sip-core'
import { reportedSetUp } from '../helpers/set-up'

/**
 * Two edge nodes of one cluster in front of a Kamailio core. Alice's connection is on node B, and she
 * registered through B; the core also holds a binding `alice-at-a` for her contact whose Path names node
 * A with B's flow token, as when the nodes share one SIP address and the core's request lands on A.
 */
describe('a core-originated request for a client on node B, sent by the core to node A', () => {
  let redis: RedisServer
  let core: Kamailio
  let a: Example
  let b: Example
  let alice: JsSIP.UA
  let coreAddress: string

  before(reportedSetUp(async () => {
    assert.ok(existsSync(SIPP), SIPP_HINT)
    JsSIP.debug.disable()
    installNodeWebRtc()
    redis = await startRedis()
    core = await startKamailio(CORE_CFG, await freePort('both'), { udp: true })
    coreAddress = `127.0.0.1:${core.port}`
    const listenA = await freePort('both')
    const node = async (listen: number): Promise<Example> => await startExample({ sipCore: `udp:${coreAddress}`, sipListen: `udp:127.0.0.1:${listen}`, redisUrl: redis.url })
    ;[a, b] = [await node(listenA), await node(await freePort('both'))]
    await clusterOf(() => a.app.wsCluster.nodes(), 2)
    await clusterOf(() => b.app.wsCluster.nodes(), 2)
    alice = userAgent(b.wsUrl, 'alice').ua
    const done = registered(alice, 'alice')
    alice.start()
    await done
    const [contact] = await coreContacts(core.port, 'alice')
    assert.ok(contact !== undefined, 'alice is registered at the core')
    const token = tokenOf(contact.Path)
    const path = `sip:${token}@127.0.0.1:${listenA};lr;ob`
    await sippPassed(await startSipp('register-path.xml', { remote: coreAddress, service: 'alice-at-a', keys: { contact: contact.Address, path } }), 'register-path.xml')
    assert.equal((await coreContacts(core.port, 'alice-at-a'))[0]?.Path, `<${path}>`)
  }))

  after(async () => {
    if (alice !== undefined) await stop(alice, 'alice')
    await a?.app.close()
    await b?.app.close()
    await core?.stop()
    await redis?.stop()
  })

  /**
   * Answers the next call; resolves once the ACK came, with the session and its end (listened to from
   * the start: a phone may send its BYE right after its ACK, in the same turn of the event loop).
   */
  async function answered (what: string): Promise<{ session: RTCSession, ended: Promise<void> }> {
    const session = await incomingCall(alice)
    assert.equal(session.direction, 'incoming', what)
    const confirmed = sessionEvent(session, 'confirmed', `the ACK (${what})`)
    const ended = sessionEvent(session, 'ended', `the end of the call (${what})`)
    ended.catch(() => {})
    session.answer(NO_MEDIA)
    await confirmed
    return { session, ended }
  }

  test('a phone calls: the INVITE, ACK and BYE reach alice through node A; her answers go out through node B', async (t) => {
    const started = performance.now()
    const call = answered('phone hangs up')
    const caller = await startSipp('uac-call-hangup.xml', { remote: coreAddress, service: 'alice-at-a' })
    try {
      const { ended } = await call
      t.diagnostic(`INVITE (core → A → Redis → B → alice) → 200 → ACK in ${(performance.now() - started).toFixed(0)} ms, sipp start-up included`)
      await sippPassed(caller, 'uac-call-hangup.xml')
      await ended
    } finally {
      await caller.stop()
    }
  })

  test('alice hangs up: node B takes node A\'s routes (its WebSocket-facing one, and the one with the cluster\'s token) as its own', async () => {
    const call = answered('alice hangs up')
    const caller = await startSipp('uac-call-hear-bye.xml', { remote: coreAddress, service: 'alice-at-a' })
    try {
      const { session, ended } = await call
      session.terminate()
      await ended
      await sippPassed(caller, 'uac-call-hear-bye.xml')
    } finally {
      await caller.stop()
    }
  })

  test('a MESSAGE from a phone reaches alice through node A, and its 200 goes back to the phone', async () => {
    const received = incomingMessage(alice)
    const sender = await startSipp('uac-message.xml', { remote: coreAddress, service: 'alice-at-a', keys: { text: 'via-node-a' } })
    try {
      const event = await within(10_000, 'the MESSAGE for alice', received)
      assert.equal(event.request.body.trim(), 'via-node-a')
      await sippPassed(sender, 'uac-message.xml')
    } finally {
      await sender.stop()
    }
  })
})
