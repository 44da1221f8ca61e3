import type { Redis } from 'ioredis'
import type { ConnectionLocal } from '../proxy/connection-local'
import { contactKey, type Binding, type RemoteBinding } from '../proxy/registrar'
import type { SipUri } from '../sip/uri'

/*
 * Keys, all under one hash tag so that on a Redis Cluster they share a slot and each script runs on one
 * shard (this registrar is small next to the plugin's traffic):
 *
 *   {P}:aor:<aor>            hash   contact key → "<connection id> <node> <expires at> <updated at> <uri>"
 *   {P}:contact:<contact>    string the AOR whose binding that contact is (in-dialog requests, PX = expiry)
 *   {P}:conn:<id>            string the connection's local side as JSON (PX = its longest binding)
 *   {P}:node:<instance>      set    "<aor>\n<contact key>" of the bindings a node wrote, for its purge
 *
 * Expiry is checked when a binding is read, as the in-memory registrar does; each key also expires with
 * the longest binding it holds, so Redis forgets what nobody removed. Values are plain text, not JSON, so
 * that Lua compares connection ids as strings: they reach 2^53, past what Lua prints exactly.
 */

// Makes a key live at least `ms` more (a key with no TTL, or a shorter one, gets `ms`).
const EXTEND = `
local function extend (key, ms)
  local left = redis.call('PTTL', key)
  if left < ms then redis.call('PEXPIRE', key, ms) end
end
`

// KEYS: aor, contact, conn, node. ARGV: contact key, value, ttl ms, node member, local side JSON, aor.
const PUT = `${EXTEND}
local ms = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
extend(KEYS[1], ms)
redis.call('SET', KEYS[2], ARGV[6], 'PX', ms)
if redis.call('PTTL', KEYS[3]) < ms then redis.call('SET', KEYS[3], ARGV[5], 'PX', ms) end
redis.call('SADD', KEYS[4], ARGV[4])
extend(KEYS[4], ms)
return 1`

// Removes a binding only while it is still the one this connection made: the UA may have registered the
// same contact again over another connection, maybe on another node, since. KEYS: aor, contact, node.
// ARGV: contact key, connection id, node member, aor.
const REMOVE = `
local value = redis.call('HGET', KEYS[1], ARGV[1])
if value == false or string.match(value, '^(%d+) ') ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('GET', KEYS[2]) == ARGV[4] then redis.call('DEL', KEYS[2]) end
redis.call('SREM', KEYS[3], ARGV[3])
return 1`

// Every binding a node wrote and still holds, and their connections' records. Idempotent: each survivor
// of a node runs it once, and only what still names the node goes. KEYS: node. ARGV: node, key base.
const PURGE = `
local removed = 0
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local aor, contact = string.match(member, '^(.-)\\n(.*)$')
  if aor ~= nil then
    local key = ARGV[2] .. 'aor:' .. aor
    local value = redis.call('HGET', key, contact)
    local id, node = false, false
    if value ~= false then id, node = string.match(value, '^(%d+) (%S+) ') end
    if node == ARGV[1] then
      redis.call('HDEL', key, contact)
      if redis.call('GET', ARGV[2] .. 'contact:' .. contact) == aor then redis.call('DEL', ARGV[2] .. 'contact:' .. contact) end
      redis.call('DEL', ARGV[2] .. 'conn:' .. id)
      removed = removed + 1
    end
  end
end
redis.call('DEL', KEYS[1])
return removed`

// The newest live binding of an AOR, else the live binding whose contact the Request-URI is; with its
// connection's record. KEYS: aor, contact. ARGV: now, key base, contact key, aor.
// Returns { aor, value, conn record or false } or nil.
const FIND = `
local now = tonumber(ARGV[1])
local function live (value)
  if value == false then return nil end
  local id, expires, at = string.match(value, '^(%d+) %S+ (%d+) (%d+) ')
  if id == nil or tonumber(expires) <= now then return nil end
  return id, tonumber(at)
end
local aor, best, bestId, bestAt = ARGV[4], nil, nil, -1
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local id, at = live(all[i + 1])
  if id ~= nil and at > bestAt then best, bestId, bestAt = all[i + 1], id, at end
end
if best == nil then
  aor = redis.call('GET', KEYS[2])
  if aor == false then return nil end
  best = redis.call('HGET', ARGV[2] .. 'aor:' .. aor, ARGV[3])
  bestId = live(best)
  if bestId == nil then return nil end
end
return { aor, best, redis.call('GET', ARGV[2] .. 'conn:' .. bestId) }`

const VALUE = /^(\d+) (\S+) (\d+) (\d+) (.*)$/s

/**
 * The registrar's bindings in Redis, shared by every node of the cluster: each node writes the bindings
 * made over its own connections and removes them when they go, and any node reads them to reach a user
 * registered elsewhere. The in-memory Registrar stays each node's authority for its own connections;
 * this is the copy the others read.
 */
export class RedisBindings {
  private readonly base: string

  constructor (private readonly redis: Redis, prefix: string, private readonly node: string, private readonly now: () => number = Date.now) {
    this.base = `{${prefix}}:reg:`
  }

  /** Writes (or refreshes) a binding made over one of this node's connections. */
  async put (binding: Binding, local: ConnectionLocal | undefined): Promise<void> {
    const key = contactKey(binding.parsed)
    const ttl = Math.max(1, binding.expiresAt - this.now())
    const value = `${binding.connectionId} ${this.node} ${binding.expiresAt} ${this.now()} ${binding.uri}`
    await this.redis.eval(PUT, 4, this.key('aor', binding.aor), this.key('contact', key), this.key('conn', String(binding.connectionId)), this.key('node', this.node),
      key, value, String(ttl), `${binding.aor}\n${key}`, JSON.stringify(local ?? null), binding.aor)
  }

  /**
   * Removes a binding (this node's, unless `node` says whose), unless it was made again over another
   * connection since.
   */
  async remove (binding: Pick<Binding, 'aor' | 'connectionId' | 'parsed'>, node = this.node): Promise<void> {
    const key = contactKey(binding.parsed)
    await this.redis.eval(REMOVE, 3, this.key('aor', binding.aor), this.key('contact', key), this.key('node', node),
      key, String(binding.connectionId), `${binding.aor}\n${key}`, binding.aor)
  }

  /** A connection closed: its record goes (its bindings are removed one by one). */
  async closed (connectionId: number): Promise<void> {
    await this.redis.del(this.key('conn', String(connectionId)))
  }

  /** Removes what `node` wrote; returns how many bindings went. */
  async purge (node: string): Promise<number> {
    return Number(await this.redis.eval(PURGE, 1, this.key('node', node), node, this.base))
  }

  /** The binding a Request-URI names anywhere in the cluster: an AOR's newest, or the one whose contact it is. */
  async find (ruri: SipUri): Promise<RemoteBinding | null> {
    const aor = ruri.user ?? ''
    const key = contactKey(ruri)
    const found = await this.redis.eval(FIND, 2, this.key('aor', aor), this.key('contact', key), String(this.now()), this.base, key, aor) as [string, string, string | null] | null
    if (found === null) return null
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
