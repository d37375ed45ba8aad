// Lua scripts of the Redis block index (layout in layout.ts). Every script takes KEYS[1] =
// the meta key (so Redis Cluster routes it) and ARGV[1] = the key prefix.
//
// A request-key hash field holds "tier=count" items joined by ',' in sorted order; tiers and
// pods are validated on the TypeScript side (tiers: no ',', '=', newline; pods: no newline,
// no leading '~').

const PRELUDE = `
local P = ARGV[1]
local META = KEYS[1]
local SPEC = P .. 'spec'
local GEN = P .. 'gen'
local dKeys, dEntries, dEngine = 0, 0, 0
local removed = 0
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
-- One more reference of (pod, tier, spec) at request key h.
local function addAt(h, pod, tier, spec)
  local rk = P .. 'r:' .. h
  local f = spec and ('~' .. pod) or pod
  local v = redis.call('HGET', rk, f)
  if not v then
    if redis.call('EXISTS', rk) == 0 then dKeys = dKeys + 1 end
    redis.call('HSET', rk, f, tier .. '=1')
    redis.call('SADD', P .. 'p:' .. pod, h)
    dEntries = dEntries + 1
  else
    local t = decode(v)
    local c = t[tier]
    if c then t[tier] = c + 1 else t[tier] = 1; dEntries = dEntries + 1 end
    redis.call('HSET', rk, f, encode(t))
  end
end
-- One reference less; the entry goes at zero, the pod's set forgets h when the pod holds
-- nothing there, and the hash vanishes with its last field.
local function evictAt(h, pod, tier, spec)
  local rk = P .. 'r:' .. h
  local f = spec and ('~' .. pod) or pod
  local v = redis.call('HGET', rk, f)
  if not v then return end
  local t = decode(v)
  local c = t[tier]
  if not c then return end
  if c > 1 then
    t[tier] = c - 1
    redis.call('HSET', rk, f, encode(t))
    return
  end
  t[tier] = nil
  local rest = encode(t)
  if rest ~= '' then
    redis.call('HSET', rk, f, rest)
  else
    redis.call('HDEL', rk, f)
    local other = spec and pod or ('~' .. pod)
    if redis.call('HEXISTS', rk, other) == 0 then
      redis.call('SREM', P .. 'p:' .. pod, h)
      if redis.call('EXISTS', rk) == 0 then dKeys = dKeys - 1 end
    end
  end
  dEntries = dEntries - 1
  removed = removed + 1
end
-- Expire speculative reservations whose deadline passed (at most 'limit'). A member is
-- "<seq>\\n<gen>\\n<pod>\\n<hex keys>"; a pod cleared since (generation moved on) is skipped.
local function sweep(limit)
  local due = redis.call('ZRANGEBYSCORE', SPEC, '-inf', now(), 'LIMIT', 0, limit)
  for _, m in ipairs(due) do
    local seq, gen, pod, hexes = string.match(m, '^([^\\n]*)\\n([^\\n]*)\\n([^\\n]*)\\n(.*)$')
    if pod and (redis.call('HGET', GEN, pod) or '0') == gen then
      for j = 1, #hexes, 16 do evictAt(string.sub(hexes, j, j + 15), pod, 'gpu', true) end
    end
    redis.call('ZREM', SPEC, m)
  end
  return #due
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
 *   'e' pod tier spec(0|1) keyHex kind(e|r) evict one reference of an entry
 *   'c' pod                                 clear every entry and engine mapping of pod
 *   's' pod ttlMs reqHex                    speculative (gpu) references expiring ttlMs from now
 * Returns the number of (key, entry) pairs that disappeared.
 */
export const APPLY_SCRIPT = `${PRELUDE}
-- Engine key -> request keys of one pod, llm-d's ratio mapping. The list keeps each request
-- key once; a newly seen one goes last (it is the parent for the next block).
local function mapEngine(pod, engHex, reqHex)
  local nE, nR = #engHex / 16, #reqHex / 16
  local n = math.max(nE, nR)
  local pek = P .. 'pe:' .. pod
  local ei0, ek, cur, changed = -1, nil, nil, false
  local function done()
    if ek and changed then redis.call('HSET', ek, pod, cur) end
  end
  for i = 0, n - 1 do
    local ei = math.floor(i * nE / n)
    if ei ~= ei0 then
      done()
      ei0 = ei
      local e = string.sub(engHex, ei * 16 + 1, ei * 16 + 16)
      ek = P .. 'e:' .. e
      cur = redis.call('HGET', ek, pod)
      changed = false
      if not cur then
        cur = ''
        changed = true
        dEngine = dEngine + 1
        redis.call('SADD', pek, e)
      end
    end
    local ri = math.floor(i * nR / n)
    local r = string.sub(reqHex, ri * 16 + 1, ri * 16 + 16)
    local seen = false
    for j = 1, #cur, 16 do
      if string.sub(cur, j, j + 15) == r then seen = true; break end
    end
    if not seen then cur = cur .. r; changed = true end
  end
  done()
end
local function evictEngine(e, pod, tier, spec)
  local ek = P .. 'e:' .. e
  local m = redis.call('HGET', ek, pod)
  if not m then return end
  local held = false
  for j = 1, #m, 16 do
    local h = string.sub(m, j, j + 15)
    evictAt(h, pod, tier, spec)
    if not held and redis.call('HEXISTS', P .. 'r:' .. h, pod) == 1 then held = true end
  end
  -- forget the mapping once the pod holds none of its request keys
  if not held then
    redis.call('HDEL', ek, pod)
    redis.call('SREM', P .. 'pe:' .. pod, e)
    dEngine = dEngine - 1
  end
end
local function clearPod(pod)
  local pk = P .. 'p:' .. pod
  for _, h in ipairs(redis.call('SMEMBERS', pk)) do
    local rk = P .. 'r:' .. h
    local n = 0
    local v = redis.call('HGET', rk, pod)
    if v then n = ntiers(v) end
    local s = redis.call('HGET', rk, '~' .. pod)
    if s then n = n + ntiers(s) end
    if n > 0 then
      redis.call('HDEL', rk, pod, '~' .. pod)
      dEntries = dEntries - n
      removed = removed + n
      if redis.call('EXISTS', rk) == 0 then dKeys = dKeys - 1 end
    end
  end
  redis.call('DEL', pk)
  local pek = P .. 'pe:' .. pod
  for _, e in ipairs(redis.call('SMEMBERS', pek)) do
    dEngine = dEngine - redis.call('HDEL', P .. 'e:' .. e, pod)
  end
  redis.call('DEL', pek)
  -- pending speculative expiries of this pod no longer apply
  redis.call('HINCRBY', GEN, pod, 1)
end

local i = 2
local nargs = #ARGV
while i <= nargs do
  local op = ARGV[i]
  if op == 'a' then
    local pod, tier, spec, req, eng = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3] == '1', ARGV[i + 4], ARGV[i + 5]
    for j = 1, #req, 16 do addAt(string.sub(req, j, j + 15), pod, tier, spec) end
    if #eng > 0 and #req > 0 and not spec then mapEngine(pod, eng, req) end
    i = i + 6
  elseif op == 'e' then
    local pod, tier, spec, key, kind = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3] == '1', ARGV[i + 4], ARGV[i + 5]
    if kind == 'e' then evictEngine(key, pod, tier, spec) else evictAt(key, pod, tier, spec) end
    i = i + 6
  elseif op == 's' then
    local pod, ttl, req = ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
    for j = 1, #req, 16 do addAt(string.sub(req, j, j + 15), pod, 'gpu', true) end
    local seq = redis.call('HINCRBY', META, 'seq', 1)
    local gen = redis.call('HGET', GEN, pod) or '0'
    redis.call('ZADD', SPEC, now() + ttl, seq .. '\\n' .. gen .. '\\n' .. pod .. '\\n' .. req)
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
 * Longest prefix in one call. ARGV[2] = request keys as concatenated hex, ARGV[3] = allowed
 * pods joined by '\\n' (ARGV[6] = '1' when a filter is given), ARGV[4] = tier weights
 * "tier=w,..." (unknown tiers 1.0), ARGV[5] = weight of a speculative entry.
 * First expires due speculative entries (bounded), then walks the keys in order keeping the
 * pods that held every block so far, and stops at the first block none of them holds.
 * Returns a flat array: hits, entries expired, then per pod: pod, blocks, weighted (as %.17g text so the double survives).
 */
export const LOOKUP_SCRIPT = `${PRELUDE}
if redis.call('ZCOUNT', SPEC, '-inf', now()) > 0 then
  sweep(200)
  flushCounters()
end
local hexes = ARGV[2]
local n = #hexes / 16
local filter = nil
if ARGV[6] == '1' then
  filter = {}
  for p in string.gmatch(ARGV[3], '[^\\n]+') do filter[p] = true end
end
local weights = {}
for tier, w in string.gmatch(ARGV[4], '([^,=]+)=([^,]+)') do weights[tier] = tonumber(w) end
local specW = tonumber(ARGV[5])
local memo = {}
local blocks, weighted, order = {}, {}, {}
local hits = 0
for i = 0, n - 1 do
  local h = redis.call('HGETALL', P .. 'r:' .. string.sub(hexes, i * 16 + 1, i * 16 + 16))
  local best = {}
  for j = 1, #h, 2 do
    local f = h[j]
    local pod, w
    if string.byte(f, 1) == 126 then
      pod = string.sub(f, 2)
      w = specW
    else
      pod = f
      local v = h[j + 1]
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
    local ok
    if i == 0 then ok = (filter == nil) or (filter[pod] == true) else ok = (blocks[pod] == i) end
    if ok then
      local b = best[pod]
      if b == nil or w > b then best[pod] = w end
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
  hits = i + 1
end
local out = { hits, removed }
for _, pod in ipairs(order) do
  out[#out + 1] = pod
  out[#out + 1] = blocks[pod]
  out[#out + 1] = string.format('%.17g', weighted[pod])
end
return out
`;

/** Expire due speculative reservations. ARGV[2] = max reservations per call. Returns { due, removed entries }. */
export const SWEEP_SCRIPT = `${PRELUDE}
local due = sweep(tonumber(ARGV[2]))
flushCounters()
return { due, removed }
`;

/**
 * The last request key of an engine key. ARGV[2] = engine key hex, ARGV[3] = pod ('' = any
 * pod: the first that mapped it). Returns 16 hex digits or false.
 */
export const ENGINE_SCRIPT = `
local ek = ARGV[1] .. 'e:' .. ARGV[2]
local m
if ARGV[3] ~= '' then
  m = redis.call('HGET', ek, ARGV[3])
else
  local all = redis.call('HGETALL', ek)
  m = all[2]
end
if not m then return false end
return string.sub(m, -16)
`;
