import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import type { ClientOptions } from 'ws'
import { expectTypeOf } from 'expect-type'
import { resolveLwscOptions, type LwscOptionsResolved } from '../../../lib/options'
import { Connection, type ConnectionOwner } from '../../../lib/lwsc/connection'
import type { Closing, LwscContext } from '../../../lib/lwsc/context'
import { silentLogger, type LwscLogger } from '../../../lib/lwsc/logger'
import { newCounters, type LwscCounters } from '../../../lib/lwsc/stats'
import { startPeer } from '../../helpers/lwsc'

describe('LwscContext', () => {
  test('types: what a client shares with its endpoints and connections; only `closed` may change', () => {
    expectTypeOf<LwscContext>().toEqualTypeOf<{
      readonly options: LwscOptionsResolved
      readonly log: LwscLogger
      readonly counters: LwscCounters
      readonly wsOptions: ClientOptions
      readonly discarded: Set<Closing>
      closed: boolean
    }>()
    expectTypeOf<Closing>().toEqualTypeOf<{ close: () => Promise<void> }>()
    // A connection taken out of service is what `discarded` holds.
    expectTypeOf<Connection>().toMatchTypeOf<Closing>()
  })

  test('`discarded` holds a connection taken out of service until its socket is closed', async (t) => {
    const peer = await startPeer()
    t.after(async () => { await peer.close() })
    const options = resolveLwscOptions({ keepaliveInterval: 0 })
    const ctx: LwscContext = { options, log: silentLogger, counters: newCounters(), wsOptions: { perMessageDeflate: false }, discarded: new Set(), closed: false }
    let opened: () => void = () => {}
    const open = new Promise<void>((resolve) => { opened = resolve })
    const owner: ConnectionOwner = { url: peer.url, proto: 'kmsg', opened: () => { opened() }, serve: () => {}, fail: () => {}, detached: () => {} }
    const conn = new Connection(owner, ctx)
    await open
    assert.equal(ctx.counters.opened, 1, 'the connection counts in the shared counters')
    const [serverSide] = peer.sockets
    conn.retire('test')
    assert.deepEqual([...ctx.discarded], [conn], 'retired, its socket still closing')
    const [code] = await once(serverSide, 'close') as [number]
    assert.equal(code, 1000)
    await conn.close()
    assert.equal(ctx.discarded.size, 0, 'gone once its socket closed')
  })
})
