import type { Redis } from 'ioredis'
import type { ConnectionLocal } from '../proxy/connection-local'
import { contactKey, flowKey, type Binding, type MovingUser, type RemoteBinding } from '../proxy/registrar'
import type { SipUri } from '../sip/uri'
import { FIND, PURGE, PUT, REMOVE } from './binding-scripts'

const VALUE = /^(\d+) (\S+) (\d+) (\d+) (.*)$/s

/** A connection named in a binding value: which one, on which node. */
export interface BoundConnection {
  connectionId: number
  node: string
}

/**
 * The registrar's bindings in Redis, shared by every node of the cluster: each node writes the bindings
 * made over its own connections and removes them when they go, and any node reads them to reach a user
 * registered elsewhere. The in-memory Registrar stays each node's authority for its own connections;
 * this is the copy the others read. Keys and scripts: binding-scripts.ts.
 */
export class RedisBindings {
  private readonly base: string

  /** `prefix` is the plugin's `cluster.prefix`: its presence keys say whether a node is alive. */
  constructor (private readonly redis: Redis, private readonly prefix: string, private readonly node: string, private readonly now: () => number = Date.now) {
    this.base = `{${prefix}}:reg:`
  }

  /**
   * Writes (or refreshes) a binding made over one of this node's connections. Resolves with the connection
   * of the same RFC 5626 flow that this registration replaced, wherever it was, or null.
   */
  async put (binding: Binding, local: ConnectionLocal | undefined): Promise<BoundConnection | null> {
    const key = contactKey(binding.parsed)
    const ttl = Math.max(1, binding.expiresAt - this.now())
    const value = `${binding.connectionId} ${this.node} ${binding.expiresAt} ${this.now()} ${binding.uri}`
    const replaced = await this.redis.eval(PUT, 6, this.key('aor', binding.aor), this.key('contact', key), this.key('conn', String(binding.connectionId)),
      this.key('node', this.node), this.key('inst', binding.aor), this.key('moving', binding.aor),
      key, value, String(ttl), `${binding.aor}\n${key}`, JSON.stringify(local ?? null), binding.aor, flowKey(binding.params) ?? '', this.base) as string | null
    const match = replaced === null ? null : VALUE.exec(replaced)
    if (match === null || Number(match[1]) === binding.connectionId) return null
    return { connectionId: Number(match[1]), node: match[2] }
  }

  /**
   * Removes a binding (this node's, unless `node` says whose), unless it was made again over another
   * connection since. With `movingMs`, its UA is moving to another node: requests for it wait that long
   * for its registration there (`find` says so) instead of finding nobody.
   */
  async remove (binding: Pick<Binding, 'aor' | 'connectionId' | 'parsed'> & Partial<Pick<Binding, 'params'>>, node = this.node, movingMs = 0): Promise<void> {
    const key = contactKey(binding.parsed)
    const moving = (binding.params === undefined ? null : flowKey(binding.params)) ?? key
    await this.redis.eval(REMOVE, 4, this.key('aor', binding.aor), this.key('contact', key), this.key('node', node), this.key('moving', binding.aor),
      key, String(binding.connectionId), `${binding.aor}\n${key}`, binding.aor, moving, String(movingMs), String(this.now()))
  }

  /** A connection closed: its record goes (its bindings are removed one by one). */
  async closed (connectionId: number): Promise<void> {
    await this.redis.del(this.key('conn', String(connectionId)))
  }

  /**
   * Removes what `node` wrote, unless Redis says it is alive (its presence key is there): resolves with how
   * many bindings went, or -1.
   */
  async purge (node: string): Promise<number> {
    // The plugin's presence key, as its README gives it for purge scripts.
    return Number(await this.redis.eval(PURGE, 2, this.key('node', node), `${this.prefix}:node:${node}`, node, this.base))
  }

  /**
   * The binding a Request-URI names anywhere in the cluster (an AOR's newest, or the one whose contact it
   * is); else whether its user is moving to another node; else null.
   */
  async find (ruri: SipUri): Promise<RemoteBinding | MovingUser | null> {
    const aor = ruri.user ?? ''
    const key = contactKey(ruri)
    const found = await this.redis.eval(FIND, 2, this.key('aor', aor), this.key('contact', key), String(this.now()), this.base, key, aor) as [string, string | null, string | null, string?] | null
    if (found === null) return null
    if (found[1] === null) return found[3] === undefined ? null : { aor: found[0], movingUntil: Number(found[3]) }
    const match = VALUE.exec(found[1])
    if (match === null) return null
    return { aor: found[0], connectionId: Number(match[1]), node: match[2], uri: match[5], local: parseLocal(found[2]) }
  }

  /** The local side of a connection with bindings, whichever node holds it. */
  async connection (connectionId: number): Promise<ConnectionLocal | null> {
    return parseLocal(await this.redis.get(this.key('conn', String(connectionId))))
  }

  private key (kind: string, name: string): string {
    return `${this.base}${kind}:${name}`
  }
}

function parseLocal (text: string | null): ConnectionLocal | null {
  if (text === null) return null
  try {
    const local = JSON.parse(text) as ConnectionLocal | null
    return local !== null && typeof local.localAddress === 'string' && typeof local.localPort === 'number' ? local : null
  } catch {
    return null
  }
}
