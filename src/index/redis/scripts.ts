// Lua scripts of the Redis block index (layout in layout.ts). Every script takes KEYS[1] =
// the meta key (so Redis Cluster routes it) and ARGV[1] = the key prefix.
//
// Tier lists in a "<pod>" field are "tier=count" items joined by ',' in sorted order; tiers
// and pods are validated on the TypeScript side (no ',', '=' or newline; pods do not start
// with '~').

const PRELUDE = `
local P = ARGV[1]
local META = KEYS[1]
local SPEC = P .. 'spec'
local dKeys, dEntries, dEngine = 0, 0, 0
local nowMs = nil
local function now()
  if not nowMs then
    local t = redis.call('TIME')
    nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return nowMs
end
local function decode(v)
  local t = {}
  for tier, c in string.gmatch(v, '([^,=]+)=(%d+)') do t[tier] = tonumber(c) end
  return t
end
local function encode(t)
  local parts = {}
  for tier, c in pairs(t) do if c > 0 then parts[#parts + 1] = tier .. '=' .. c end end
  table.sort(parts)
  return table.concat(parts, ',')
end
local function ntiers(v)
  local n = 0
  for _ in string.gmatch(v, '=') do n = n + 1 end
  return n
end
-- After removing a field of <pod> at <h>: drop <h> from the pod's set when the pod holds
-- nothing there any more, and count the key as gone when its hash vanished.
local function settle(h, rk, pod)
  if redis.call('HEXISTS', rk, pod) == 0 and redis.call('HEXISTS', rk, '~' .. pod) == 0 then
    redis.call('SREM', P .. 'p:' .. pod, h)
    if redis.call('EXISTS', rk) == 0 then dKeys = dKeys - 1 end
  end
end
local function anyHeld(m)
  for i = 1, #m, 16 do
    if redis.call('EXISTS', P .. 'r:' .. string.sub(m, i, i + 15)) == 1 then return true end
  end
  return false
end
local function flushCounters()
  if dKeys ~= 0 then redis.call('HINCRBY', META, 'keys', dKeys) end
  if dEntries ~= 0 then redis.call('HINCRBY', META, 'entries', dEntries) end
  if dEngine ~= 0 then redis.call('HINCRBY', META, 'engine', dEngine) end
end
`;

/**
 * Apply a batch of writes in order. ARGV[2..] is a sequence of ops:
 *   'a' pod tier spec(0|1) reqHex engHex   add (engHex '' = no engine mapping)
 *   'e' pod tier spec(0|1) keyHex kind(e|r) evict one entry from an engine or request key
 *   'c' pod                                 clear every entry and engine mapping of pod
 *   's' pod ttlMs reqHex                    speculative entries expiring ttlMs from now
 * Returns the number of (key, entry) pairs removed by evictions and clears.
 */
export const APPLY_SCRIPT = `${PRELUDE}
local removed = 0
local function addConfirmed(h, pod, tier)
  local rk = P .. 'r:' .. h
  local v = redis.call('HGET', rk, pod)
  if not v then
    if redis.call('EXISTS', rk) == 0 then dKeys = dKeys + 1 end
    redis.call('HSET', rk, pod, tier .. '=1')
    redis.call('SADD', P .. 'p:' .. pod, h)
    dEntries = dEntries + 1
  else
    local t = decode(v)
    local c = t[tier]
    if c then t[tier] = c + 1 else t[tier] = 1; dEntries = dEntries + 1 end
    redis.call('HSET', rk, pod, encode(t))
  end
end
-- deadline: ms on the server clock, or nil for an entry without TTL
local function addSpec(h, pod, deadline)
  local rk = P .. 'r:' .. h
  local f = '~' .. pod
  local v = redis.call('HGET', rk, f)
  if not v then
    if redis.call('EXISTS', rk) == 0 then dKeys = dKeys + 1 end
    redis.call('SADD', P .. 'p:' .. pod, h)
    dEntries = dEntries + 1
  else
    if v == 'inf' then return end
    if deadline and tonumber(v) >= deadline then return end
  end
  if deadline then
    local d = string.format('%d', deadline)
    redis.call('HSET', rk, f, d)
    redis.call('ZADD', SPEC, 'GT', d, h .. pod)
  else
    redis.call('HSET', rk, f, 'inf')
    if v then redis.call('ZREM', SPEC, h .. pod) end
  end
end
local function evictAt(h, pod, tier, spec)
  local rk = P .. 'r:' .. h
  if spec then
    if redis.call('HDEL', rk, '~' .. pod) == 0 then return end
    redis.call('ZREM', SPEC, h .. pod)
  else
    local v = redis.call('HGET', rk, pod)
    if not v then return end
    local t = decode(v)
    local c = t[tier]
    if not c then return end
    if c > 1 then
      t[tier] = c - 1
      redis.call('HSET', rk, pod, encode(t))
      return
    end
    t[tier] = nil
    local rest = encode(t)
    if rest == '' then redis.call('HDEL', rk, pod) else redis.call('HSET', rk, pod, rest) end
  end
  dEntries = dEntries - 1
  removed = removed + 1
  settle(h, rk, pod)
end
local function mapEngine(pod, engHex, reqHex)
  local nE, nR = #engHex / 16, #reqHex / 16
  local n = math.max(nE, nR)
  local lists = {}
  for i = 0, n - 1 do
    local ei = math.floor(i * nE / n)
    local ri = math.floor(i * nR / n)
    local s = string.sub(reqHex, ri * 16 + 1, ri * 16 + 16)
    local l = lists[ei]
    if l then l[#l + 1] = s else lists[ei] = { s } end
  end
  local pek = P .. 'pe:' .. pod
  for ei = 0, nE - 1 do
    local e = string.sub(engHex, ei * 16 + 1, ei * 16 + 16)
    if not redis.call('SET', P .. 'e:' .. e, table.concat(lists[ei]), 'GET') then dEngine = dEngine + 1 end
    redis.call('SADD', pek, e)
  end
end
local function evictEngine(e, pod, tier, spec)
  local ek = P .. 'e:' .. e
  local m = redis.call('GET', ek)
  if not m then return end
  for i = 1, #m, 16 do evictAt(string.sub(m, i, i + 15), pod, tier, spec) end
  if not anyHeld(m) then
    redis.call('DEL', ek)
    dEngine = dEngine - 1
    redis.call('SREM', P .. 'pe:' .. pod, e)
  end
end
local function clearPod(pod)
  local pk = P .. 'p:' .. pod
  for _, h in ipairs(redis.call('SMEMBERS', pk)) do
    local rk = P .. 'r:' .. h
    local n = 0
    local v = redis.call('HGET', rk, pod)
    if v then n = ntiers(v); redis.call('HDEL', rk, pod) end
    if redis.call('HDEL', rk, '~' .. pod) == 1 then
      n = n + 1
      redis.call('ZREM', SPEC, h .. pod)
    end
    if n > 0 then
      dEntries = dEntries - n
      removed = removed + n
      if redis.call('EXISTS', rk) == 0 then dKeys = dKeys - 1 end
    end
  end
  redis.call('DEL', pk)
  local pek = P .. 'pe:' .. pod
  for _, e in ipairs(redis.call('SMEMBERS', pek)) do
    local ek = P .. 'e:' .. e
    local m = redis.call('GET', ek)
    if m and not anyHeld(m) then
      redis.call('DEL', ek)
      dEngine = dEngine - 1
    end
  end
  redis.call('DEL', pek)
end

local i = 2
local nargs = #ARGV
while i <= nargs do
  local op = ARGV[i]
  if op == 'a' then
    local pod, tier, spec, req, eng = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3] == '1', ARGV[i + 4], ARGV[i + 5]
    for j = 1, #req, 16 do
      local h = string.sub(req, j, j + 15)
      if spec then addSpec(h, pod, nil) else addConfirmed(h, pod, tier) end
    end
    if #eng > 0 and #req > 0 then mapEngine(pod, eng, req) end
    i = i + 6
  elseif op == 'e' then
    local pod, tier, spec, key, kind = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3] == '1', ARGV[i + 4], ARGV[i + 5]
    if kind == 'e' then evictEngine(key, pod, tier, spec) else evictAt(key, pod, tier, spec) end
    i = i + 6
  elseif op == 's' then
    local pod, deadline, req = ARGV[i + 1], now() + tonumber(ARGV[i + 2]), ARGV[i + 3]
    for j = 1, #req, 16 do addSpec(string.sub(req, j, j + 15), pod, deadline) end
    i = i + 4
  elseif op == 'c' then
    clearPod(ARGV[i + 1])
    i = i + 2
  else
    flushCounters()
    return redis.error_reply('kvr apply: unknown op ' .. tostring(op) .. ' at ' .. i)
  end
end
flushCounters()
return removed
`;

/**
 * Longest prefix, one call. ARGV[2] = request keys as concatenated hex, ARGV[3] = allowed
 * pods joined by '\\n' ('' = all), ARGV[4] = tier weights "tier=w,..." (unknown tiers 1.0),
 * ARGV[5] = weight of a speculative entry. Walks the keys in order, keeps the pods that held
 * every block so far, and stops at the first block none of them holds.
 * Returns a flat array: pod, blocks, weighted (as %.17g text so the double survives).
 */
export const LOOKUP_SCRIPT = `
local P = ARGV[1]
local hexes = ARGV[2]
local n = #hexes / 16
local filter = nil
if ARGV[3] ~= '' then
  filter = {}
  for p in string.gmatch(ARGV[3], '[^\\n]+') do filter[p] = true end
end
local weights = {}
for tier, w in string.gmatch(ARGV[4], '([^,=]+)=([^,]+)') do weights[tier] = tonumber(w) end
local specW = tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local memo = {}
local blocks, weighted, order = {}, {}, {}
for i = 0, n - 1 do
  local h = redis.call('HGETALL', P .. 'r:' .. string.sub(hexes, i * 16 + 1, i * 16 + 16))
  local best = {}
  for j = 1, #h, 2 do
    local f, v = h[j], h[j + 1]
    local pod, w = nil, nil
    if string.byte(f, 1) == 126 then
      if v == 'inf' or tonumber(v) > now then pod = string.sub(f, 2); w = specW end
    else
      pod = f
      w = memo[v]
      if not w then
        w = -1
        for tier in string.gmatch(v, '([^,=]+)=') do
          local tw = weights[tier] or 1
          if tw > w then w = tw end
        end
        memo[v] = w
      end
    end
    if pod then
      local ok
      if i == 0 then ok = (filter == nil) or (filter[pod] == true) else ok = (blocks[pod] == i) end
      if ok then
        local b = best[pod]
        if b == nil or w > b then best[pod] = w end
      end
    end
  end
  local found = false
  for pod, w in pairs(best) do
    if i == 0 then order[#order + 1] = pod end
    blocks[pod] = i + 1
    weighted[pod] = (weighted[pod] or 0) + w
    found = true
  end
  if not found then break end
end
local out = {}
for _, pod in ipairs(order) do
  out[#out + 1] = pod
  out[#out + 1] = blocks[pod]
  out[#out + 1] = string.format('%.17g', weighted[pod])
end
return out
`;

/** Remove speculative entries whose deadline passed. ARGV[2] = max entries per call. Returns how many were due. */
export const SWEEP_SCRIPT = `${PRELUDE}
local due = redis.call('ZRANGEBYSCORE', SPEC, '-inf', now(), 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  local h = string.sub(m, 1, 16)
  local pod = string.sub(m, 17)
  local rk = P .. 'r:' .. h
  local f = '~' .. pod
  local v = redis.call('HGET', rk, f)
  if v and v ~= 'inf' and tonumber(v) <= now() then
    redis.call('HDEL', rk, f)
    dEntries = dEntries - 1
    settle(h, rk, pod)
  end
  redis.call('ZREM', SPEC, m)
end
flushCounters()
return #due
`;
