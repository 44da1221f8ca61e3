import assert from 'node:assert/strict'
import { join } from 'node:path'
import type { ExampleOptions } from '../../example/options'
import { jsonRpc } from '../helpers/json-rpc'
import { startKamailio, type Kamailio } from '../helpers/kamailio'
import { freePort } from '../helpers/lwsc'
import { startLossyLink, type LossyLink } from '../helpers/lossy-link'
import { sippPassed, startSipp, type Sipp } from '../helpers/sipp'
import { startExample, type Example } from './helpers'

export const CORE_CFG = join(__dirname, '..', 'fixtures', 'kamailio-core.cfg')

export interface EdgeWithCore {
  core: Kamailio
  example: Example
  /** `127.0.0.1:<port>` of the core (UDP and TCP). */
  coreAddress: string
  /** The edge's SIP port towards the core. */
  listenPort: number
  /** The lossy link between the edge and the core, when there is one. */
  link: LossyLink | null
  close: () => Promise<void>
}

/**
 * A Kamailio core (kamailio-core.cfg) on UDP and TCP, and the example edge in front of it. With `loss`,
 * the edge reaches the core, and the core the edge, through a link that loses that share of the UDP
 * datagrams (the edge advertises the link's far end as its address).
 */
export async function startEdgeWithCore (transport: 'udp' | 'tcp' = 'udp', options: ExampleOptions = {}, loss?: { rate: number, seed: number }): Promise<EdgeWithCore> {
  const core = await startKamailio(CORE_CFG, await freePort('both'), { udp: true })
  let link: LossyLink | null = null
  try {
    const coreAddress = `127.0.0.1:${core.port}`
    const listenPort = await freePort('both')
    link = loss === undefined ? null : await startLossyLink({ host: '127.0.0.1', port: core.port }, { host: '127.0.0.1', port: listenPort }, loss.rate, loss.seed)
    const reach = link === null ? { sipCore: `${transport}:${coreAddress}` } : { sipCore: `${transport}:127.0.0.1:${link.edgeFacing}`, sipAdvertise: `127.0.0.1:${link.coreFacing}` }
    const example = await startExample({ ...reach, sipListen: `${transport}:127.0.0.1:${listenPort}`, ...options })
    return {
      core,
      example,
      coreAddress,
      listenPort,
      link,
      close: async () => {
        await example.app.close()
        await link?.close()
        await core.stop()
      }
    }
  } catch (err) {
    await link?.close()
    await core.stop()
    throw err
  }
}

/**
 * A sipp phone behind the core: its UAS (`scenario`) runs on a free port and a REGISTER of `user` at the
 * core (`register`: register.xml, or register-userless.xml for a contact with no user part) names that
 * port as its contact.
 */
export async function registeredPhone (coreAddress: string, scenario: string, user: string, register = 'register.xml'): Promise<Sipp> {
  const phone = await startSipp(scenario, {})
  try {
    await sippPassed(await startSipp(register, { remote: coreAddress, service: user, keys: { contact_port: String(phone.port) } }), register)
    return phone
  } catch (err) {
    await phone.stop()
    throw err
  }
}

export interface UlContact { Address: string, Path: string, Instance: string }
interface UlDump { Domains: Array<{ Domain: { AoRs: Array<{ Info: { AoR: string, Contacts: Array<{ Contact: UlContact }> } }> } }> }

/** The contacts the core's usrloc holds for `aor` (Kamailio's `ul.dump`). */
export async function coreContacts (port: number, aor: string): Promise<UlContact[]> {
  const dump = await jsonRpc<UlDump>(port, 'ul.dump')
  const record = dump.Domains.flatMap((d) => d.Domain.AoRs).find((a) => a.Info.AoR === aor)
  return record?.Info.Contacts.map((c) => c.Contact) ?? []
}

/** The flow token in a Path value: `<sip:TOKEN@host:port;lr;ob>`. */
export function tokenOf (path: string): string {
  const match = /^<sip:([^@]+)@/.exec(path)
  assert.ok(match !== null, `a Path with a token: ${path}`)
  return match[1]
}
