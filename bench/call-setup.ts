/**
 * Call set-up time, INVITE sent → 200 OK received, for a JsSIP UA (Node, @roamhq/wrtc, no media) calling a
 * sipp phone registered at a Kamailio core, two ways:
 *
 *   edge:      JsSIP ─WS→ example edge ─UDP/TCP→ Kamailio core ─UDP→ sipp
 *   kamailio:  JsSIP ─WS→ Kamailio (websocket module, same cfg with WITH_WEBSOCKET) ─UDP→ sipp
 *
 * `npm run bench:calls` (CALLS=20 by default). Prints the figures; asserts nothing about them.
 */
import * as JsSIP from 'jssip'
import type { RTCSession } from 'jssip/lib/RTCSession'
import { startKamailio } from '../test/helpers/kamailio'
import { freePort } from '../test/helpers/lwsc'
import { sippPassed } from '../test/helpers/sipp'
import { within } from '../test/helpers/pool'
import { installNodeWebRtc, NO_MEDIA, registered, stop, userAgent } from '../test/e2e/jssip-node'
import { CORE_CFG, registeredPhone, startEdgeWithCore } from '../test/e2e/sip-core'

const CALLS = Number(process.env.CALLS ?? 20)

/** One call: the time from JsSIP handing the INVITE to its transport to the 200 OK, then BYE. */
async function oneCall (ua: JsSIP.UA, coreAddress: string, n: number): Promise<number> {
  // A phone per call: one sipp UAS running several calls in a row stopped answering after two here.
  const phone = await registeredPhone(coreAddress, 'uas-answer.xml', `phone${n}`)
  const session: RTCSession = ua.call(`sip:phone${n}@127.0.0.1`, NO_MEDIA)
  let sentAt = 0
  let okAt = 0
  session.once('sending', () => { sentAt = performance.now() })
  session.once('accepted', () => { okAt = performance.now() })
  await within(new Promise<void>((resolve, reject) => {
    session.once('confirmed', () => { resolve() })
    session.once('failed', (e) => { reject(new Error(`call failed: ${e.cause}`)) })
  }), 10000, () => 'a call to be answered')
  const ended = new Promise<void>((resolve) => { session.once('ended', () => { resolve() }) })
  session.terminate()
  await within(ended, 10000, () => 'the BYE')
  await sippPassed(phone, 'uas-answer.xml')
  await phone.stop()
  return okAt - sentAt
}

async function measure (wsUrl: string, coreAddress: string): Promise<number[]> {
  const { ua } = userAgent(wsUrl, 'alice')
  try {
    const done = registered(ua, 'alice')
    ua.start()
    await done
    await oneCall(ua, coreAddress, 0) // warm-up: the first TCP connection, the first run of each code path
    const times: number[] = []
    for (let i = 1; i <= CALLS; i++) times.push(await oneCall(ua, coreAddress, i))
    return times
  } finally {
    await stop(ua, 'alice')
  }
}

function summary (name: string, times: number[]): string {
  const sorted = [...times].sort((a, b) => a - b)
  const at = (q: number): string => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))].toFixed(1)
  return `${name.padEnd(9)} calls=${sorted.length} median=${at(0.5)} ms  p10=${at(0.1)}  p90=${at(0.9)}  min=${sorted[0].toFixed(1)}  max=${sorted.at(-1)?.toFixed(1) ?? ''}`
}

async function main (): Promise<void> {
  JsSIP.debug.disable()
  installNodeWebRtc()
  const edge = await startEdgeWithCore('udp')
  let edgeTimes: number[]
  try {
    edgeTimes = await measure(edge.example.wsUrl, edge.coreAddress)
  } finally {
    await edge.close()
  }
  const kamailio = await startKamailio(CORE_CFG, await freePort('both'), { udp: true, defines: ['WITH_WEBSOCKET'] })
  let kamailioTimes: number[]
  try {
    kamailioTimes = await measure(`ws://127.0.0.1:${kamailio.port}/`, `127.0.0.1:${kamailio.port}`)
  } finally {
    await kamailio.stop()
  }
  process.stdout.write(`INVITE sent → 200 OK received (JsSIP in Node → sipp phone)\n${summary('edge', edgeTimes)}\n${summary('kamailio', kamailioTimes)}\n`)
}

// @roamhq/wrtc can crash while Node tears down after the event loop empties; exit before that.
main().then(() => process.exit(0), (err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  process.exit(1)
})
