import { createHmac } from 'node:crypto'
import { splitList } from '../sip/headers'
import type { SipRequest, SipResponse } from '../sip/message'
import { topVia } from '../sip/via'

/** The Via parameter naming where a relayed request came from: a WebSocket connection id, or `core`. */
export const CID_PARAM = 'cid'
const MAGIC_COOKIE = 'z9hG4bK'

/** Where the response to a relayed request goes back to. */
export type ViaSource = number | 'core'

export type PoppedVia = { source: ViaSource } | { problem: 'not ours' | 'forged' }

/**
 * The Via a stateless proxy puts on the requests it relays (RFC 3261 §16.6 step 8, §16.11): it names the
 * request's source, so the response finds its way back with no transaction state kept, and its branch is
 * an HMAC of that source and the sender's own branch. So a CANCEL or a non-2xx ACK gets the same branch
 * as its INVITE, and a response whose Via was forged to reach another connection fails the check.
 */
export class ProxyVia {
  constructor (private readonly secret: Buffer) {}

  /** The Via value for `request`, relayed from `source` and sent as `SIP/2.0/<transport> <sentBy>`. */
  make (request: SipRequest, transport: string, sentBy: string, source: ViaSource, extra = ''): string {
    return `SIP/2.0/${transport} ${sentBy};branch=${this.branch(source, previousBranch(request))};${CID_PARAM}=${source}${extra}`
  }

  /** Removes the top Via of a response when this proxy put it there, and says where the response goes. */
  pop (response: SipResponse): PoppedVia {
    const via = topVia(response)
    const cid = via?.params.get(CID_PARAM)
    // Ids are safe integers: up to 16 digits (cluster-mode ids reach 2^53).
    if (via === null || cid === undefined || cid === null || !((/^\d{1,16}$/.test(cid) && Number.isSafeInteger(Number(cid))) || cid === 'core')) return { problem: 'not ours' }
    const source: ViaSource = cid === 'core' ? 'core' : Number(cid)
    response.shift('via', splitList)
    if (response.get('via') === undefined || via.params.get('branch') !== this.branch(source, previousBranch(response))) return { problem: 'forged' }
    return { source }
  }

  private branch (source: ViaSource, previous: string): string {
    const mac = createHmac('sha256', this.secret).update(`${source}\n${previous}`).digest('base64url')
    return MAGIC_COOKIE + mac.slice(0, 22)
  }
}

/** The branch of the top Via (the whole value when it has none), which the proxy's branch is made from. */
function previousBranch (message: SipRequest | SipResponse): string {
  return topVia(message)?.params.get('branch') ?? message.get('via') ?? ''
}
