import * as JsSIP from 'jssip'
import { SipTraffic } from '../helpers/sip-traffic'
import { within } from './helpers'
import { NodeWebSocketInterface, send } from './jssip-node'

/** A JsSIP UA given every node's URL, as an operator would configure a client of a cluster. */
export interface CrowdAgent {
  user: string
  ua: JsSIP.UA
  sockets: NodeWebSocketInterface[]
  /** How long each of its moves took: from its connection closing to its registration on the next. */
  moves: number[]
}

/** Agents that send MESSAGEs to each other, every request counted (`traffic`). */
export interface Crowd {
  agents: CrowdAgent[]
  traffic: SipTraffic
  /** Each agent sends a MESSAGE to a random other one, waits for its outcome, then `intervalMs`, while on. */
  start: () => void
  /** Stops sending, and waits up to `settleMs` for what is in flight. */
  stop: (settleMs: number) => Promise<void>
  /** Unregisters nothing: stops every UA (its sockets close). */
  close: () => void
}

export interface CrowdOptions {
  /** Users are named `<name>00`, `<name>01`, ... (`u` by default). */
  name?: string
  /** Whom each agent sends to (a random one each time): the crowd's other agents by default. */
  targets?: () => string[]
  /** Counts the requests (a crowd's own by default; crowds may share one). */
  traffic?: SipTraffic
}

/**
 * `count` JsSIP UAs, each with a socket per URL (JsSIP picks one at random and moves to another when it
 * fails, after its own reconnection delay: 2 s at first), registered before this resolves. They send only
 * while registered: a UA between two nodes sends nothing, as an app would not.
 */
export async function startCrowd (urls: string[], count: number, intervalMs: number, options: CrowdOptions = {}): Promise<Crowd> {
  const traffic = options.traffic ?? new SipTraffic()
  const agents: CrowdAgent[] = Array.from({ length: count }, (_, i) => {
    const user = `${options.name ?? 'u'}${String(i).padStart(2, '0')}`
    const sockets = urls.map((url) => new NodeWebSocketInterface(url))
    const ua = new JsSIP.UA({ sockets, uri: `sip:${user}@127.0.0.1`, register: true, register_expires: 600, user_agent: `crowd ${user}` })
    // JsSIP answers 405 to a MESSAGE nobody listens for; with a listener, 200.
    ua.on('newMessage', () => {})
    const agent: CrowdAgent = { user, ua, sockets, moves: [] }
    let lostAt = 0
    ua.on('disconnected', () => { if (lostAt === 0) lostAt = performance.now() })
    ua.on('registered', () => {
      if (lostAt !== 0) agent.moves.push(performance.now() - lostAt)
      lostAt = 0
    })
    return agent
  })
  await within(20_000, 'every agent to register', Promise.all(agents.map(async ({ ua, user }) => {
    const registered = new Promise<void>((resolve, reject) => {
      ua.once('registered', () => { resolve() })
      ua.once('registrationFailed', (e) => { reject(new Error(`${user}: ${String(e.cause)}`)) })
    })
    ua.start()
    await registered
  })))
  let on = false
  const loop = async (agent: CrowdAgent): Promise<void> => {
    while (on) {
      if (!agent.ua.isRegistered() || !agent.ua.isConnected()) {
        await registeredOr(agent.ua, intervalMs)
        continue
      }
      const others = options.targets?.() ?? agents.filter((a) => a !== agent).map((a) => a.user)
      const target = others[Math.floor(Math.random() * others.length)]
      const refused = refusals(agent)
      // JsSIP writes to the socket within sendMessage: a refusal there means the request never left.
      const outcome = send(agent.ua, `sip:${target}@127.0.0.1`, `from ${agent.user}`)
      if (refusals(agent) > refused) {
        traffic.unsent++
        await outcome
      } else {
        await traffic.track(`${agent.user} → ${target}`, outcome.then((r) => ({ status: r.status, cause: r.status === 0 ? r.reason : undefined })))
      }
      await new Promise((resolve) => setTimeout(resolve, intervalMs))
    }
  }
  return {
    agents,
    traffic,
    start: () => {
      on = true
      for (const agent of agents) void loop(agent)
    },
    stop: async (settleMs) => {
      on = false
      await traffic.settle(settleMs)
    },
    close: () => { for (const { ua } of agents) ua.stop() }
  }
}

function refusals (agent: CrowdAgent): number {
  return agent.sockets.reduce((sum, socket) => sum + socket.refused, 0)
}

/** Resolves once the UA is registered again, or after `ms`: the loop then looks again. */
async function registeredOr (ua: JsSIP.UA, ms: number): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms)
    function done (): void {
      clearTimeout(timer)
      ua.off('registered', done)
      resolve()
    }
    ua.once('registered', done)
  })
}
