/*
 * The Lua scripts behind the registrar's bindings in Redis (redis-bindings.ts). Keys, all under one hash tag
 * so that on a Redis Cluster they share a slot (the purge also reads the plugin's presence key, which does
 * not: like the plugin's classic pub/sub and its lease reads, it wants one Redis or Sentinel):
 *
 *   {P}:aor:<aor>            hash   contact key → "<connection id> <node> <expires at> <updated at> <uri>"
 *   {P}:contact:<contact>    string the AOR whose binding that contact is (in-dialog requests, PX = expiry)
 *   {P}:conn:<id>            string the connection's local side as JSON (PX = its longest binding)
 *   {P}:node:<instance>      set    "<aor>\n<contact key>" of the bindings a node wrote, for its purge
 *   {P}:inst:<aor>           hash   RFC 5626 flow ("<+sip.instance>#<reg-id>") → its contact key
 *   {P}:moving:<aor>         hash   flow or contact key → until when (ms) its UA is moving to another node
 *
 * Expiry is checked when a binding is read, as the in-memory registrar does; each key also expires with the
 * longest binding it holds, so Redis forgets what nobody removed. Values are plain text, not JSON, so that
 * Lua compares connection ids as strings: they reach 2^53, past what Lua prints exactly.
 */

// Makes a key live at least `ms` more (a key with no TTL, or a shorter one, gets `ms`).
const EXTEND = `
local function extend (key, ms)
  local left = redis.call('PTTL', key)
  if left < ms then redis.call('PEXPIRE', key, ms) end
end
`

/**
 * Writes a binding. The same contact, or (RFC 5626 §6) the same flow, registered before over another
 * connection is replaced, wherever it was, and its UA is no longer moving. Returns the value replaced
 * when it was the same flow's, else false.
 * KEYS: aor, contact, conn, node, inst, moving. ARGV: contact key, value, ttl ms, node member, local side
 * JSON, aor, flow key or '', key base.
 */
export const PUT = `${EXTEND}
local ms = tonumber(ARGV[3])
local replaced = false
if ARGV[7] ~= '' then
  local old = redis.call('HGET', KEYS[5], ARGV[7])
  if old ~= false and old ~= ARGV[1] then
    replaced = redis.call('HGET', KEYS[1], old)
    redis.call('HDEL', KEYS[1], old)
    if redis.call('GET', ARGV[8] .. 'contact:' .. old) == ARGV[6] then redis.call('DEL', ARGV[8] .. 'contact:' .. old) end
  end
  if replaced == false then replaced = redis.call('HGET', KEYS[1], ARGV[1]) end
  redis.call('HSET', KEYS[5], ARGV[7], ARGV[1])
  extend(KEYS[5], ms)
  redis.call('HDEL', KEYS[6], ARGV[7])
end
redis.call('HDEL', KEYS[6], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
extend(KEYS[1], ms)
redis.call('SET', KEYS[2], ARGV[6], 'PX', ms)
if redis.call('PTTL', KEYS[3]) < ms then redis.call('SET', KEYS[3], ARGV[5], 'PX', ms) end
redis.call('SADD', KEYS[4], ARGV[4])
extend(KEYS[4], ms)
return replaced`

/**
 * Removes a binding only while it is still the one this connection made: the UA may have registered the
 * same contact again over another connection, maybe on another node, since. With a grace period its UA is
 * moving (its node drains): the contact index stays, and the AOR is marked moving until then.
 * KEYS: aor, contact, node, moving. ARGV: contact key, connection id, node member, aor, moving key (flow or
 * contact), grace ms (0: gone, not moving), now.
 */
export const REMOVE = `${EXTEND}
local value = redis.call('HGET', KEYS[1], ARGV[1])
if value == false or string.match(value, '^(%d+) ') ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[3])
local grace = tonumber(ARGV[6])
if grace > 0 then
  redis.call('HSET', KEYS[4], ARGV[5], tostring(tonumber(ARGV[7]) + grace))
  extend(KEYS[4], grace)
  extend(KEYS[2], grace)
elseif redis.call('GET', KEYS[2]) == ARGV[4] then
  redis.call('DEL', KEYS[2])
end
return 1`

/**
 * Every binding a node wrote and still holds, and their connections' records, unless Redis says the node
 * is alive: its presence key (`<cluster prefix>:node:<instance>`, lib/cluster/presence.ts), which only
 * the node writes, is there. A node's local view of the others is a hint; this check is the truth, made
 * in the same script, so a purge that runs late (after the node came back and wrote its bindings again)
 * removes nothing. Idempotent: each survivor of a node runs it once, and only what still names the node
 * goes. Returns how many went, or -1 (alive).
 * KEYS: node set, node's presence. ARGV: node, key base.
 */
export const PURGE = `
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
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

/**
 * The newest live binding of an AOR, else the live binding whose contact the Request-URI is; with its
 * connection's record. Without one, whether the AOR's UA is moving, and until when.
 * KEYS: aor, contact. ARGV: now, key base, contact key, aor.
 * Returns { aor, value, conn record or false }, { aor, false, false, moving until } or nil.
 */
export const FIND = `
local now = tonumber(ARGV[1])
local function live (value)
  if value == false then return nil end
  local id, expires, at = string.match(value, '^(%d+) %S+ (%d+) (%d+) ')
  if id == nil or tonumber(expires) <= now then return nil end
  return id, tonumber(at)
end
local function moving (aor)
  local all = redis.call('HGETALL', ARGV[2] .. 'moving:' .. aor)
  local latest = -1
  for i = 2, #all, 2 do
    local at = tonumber(all[i])
    if at ~= nil and at > now and at > latest then latest = at end
  end
  if latest < 0 then return nil end
  return { aor, false, false, string.format('%d', latest) }
end
local aor, best, bestId, bestAt = ARGV[4], nil, nil, -1
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local id, at = live(all[i + 1])
  if id ~= nil and at > bestAt then best, bestId, bestAt = all[i + 1], id, at end
end
if best == nil then
  local named = redis.call('GET', KEYS[2])
  if named == false then return moving(aor) end
  aor = named
  best = redis.call('HGET', ARGV[2] .. 'aor:' .. aor, ARGV[3])
  bestId = live(best)
  if bestId == nil then return moving(aor) end
end
return { aor, best, redis.call('GET', ARGV[2] .. 'conn:' .. bestId) }`
