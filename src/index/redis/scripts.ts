// Lua scripts of the Redis block index (layout in layout.ts). Every script takes KEYS[1] =
// the meta key (so Redis Cluster routes it) and ARGV[1] = the key prefix.
//
// A request key's value is a list of records "<pod>\t<tag>[*<refs>]\n", one per entry; tag is
// the tier, or "~<tier>" for a speculative entry; "*<refs>" only appears when the entry is
// referenced more than once. Equal holder sets give byte-equal values, which the lookup uses
// to walk runs of blocks without re-reading them (Lua strings compare in O(1)).
// Pods must not contain tab or newline; tiers must not contain tab, newline, '*', ',', '='
// or start with '~' (checked on the TypeScript side).

const PRELUDE = `
local P = ARGV[1]
local META = KEYS[1]
local SPEC = P .. 'spec'
local GEN = P .. 'gen'
local PODS = P .. 'pods'
local find, sub, byte, gmatch = string.find, string.sub, string.byte, string.gmatch
local dKeys, dEntries, dEngine, removed = 0, 0, 0, 0
local nowMs = nil
local function now()
  if not nowMs then
    local t = redis.call('TIME')
    nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return nowMs
end

-- ---- batch-local caches, written back once at the end ----
local rcache, rdirty, rlist = {}, {}, {}   -- 'P r:<h>' -> value | false; dirty set and list
local ecache, edirty, elist = {}, {}, {}   -- per pod: { <e> -> list | false }, dirty set, dirty list
local function rkey(h) return P .. 'r:' .. h end
local function rprefetch(names)
  local miss = {}
  for _, k in ipairs(names) do if rcache[k] == nil then miss[#miss + 1] = k end end
  for a = 1, #miss, 1000 do
    local part = { unpack(miss, a, math.min(#miss, a + 999)) }
    local vals = redis.call('MGET', unpack(part))
    for j = 1, #part do if rcache[part[j]] == nil then rcache[part[j]] = vals[j] end end
  end
end
local function rget(k)
  local v = rcache[k]
  if v == nil then v = redis.call('GET', k); rcache[k] = v end
  return v
end
local function rset(k, v)
  local old = rget(k)
  if old and not v then dKeys = dKeys - 1 elseif v and not old then dKeys = dKeys + 1 end
  rcache[k] = v
  if not rdirty[k] then rdirty[k] = true; rlist[#rlist + 1] = k end
end
local function epod(pod)
  local c = ecache[pod]
  if not c then c = {}; ecache[pod] = c; edirty[pod] = {}; elist[pod] = {} end
  return c
end
local function eget(pod, e)
  local c = epod(pod)
  local v = c[e]
  if v == nil then v = redis.call('HGET', P .. 'e:' .. pod, e); c[e] = v end
  return v
end
local function eprefetch(pod, es)
  local c = epod(pod)
  local miss = {}
  for _, e in ipairs(es) do if c[e] == nil then miss[#miss + 1] = e end end
  for a = 1, #miss, 1000 do
    local part = { unpack(miss, a, math.min(#miss, a + 999)) }
    local vals = redis.call('HMGET', P .. 'e:' .. pod, unpack(part))
    for j = 1, #part do if c[part[j]] == nil then c[part[j]] = vals[j] end end
  end
end
local function eset(pod, e, v)
  local old = eget(pod, e)
  if old and not v then dEngine = dEngine - 1 elseif v and not old then dEngine = dEngine + 1 end
  ecache[pod][e] = v
  local d = edirty[pod]
  if not d[e] then d[e] = true; local l = elist[pod]; l[#l + 1] = e end
end
local function writeBack()
  local set, del = {}, {}
  for _, k in ipairs(rlist) do
    local v = rcache[k]
    if v then set[#set + 1] = k; set[#set + 1] = v else del[#del + 1] = k end
  end
  for a = 1, #set, 1000 do redis.call('MSET', unpack(set, a, math.min(#set, a + 999))) end
  for a = 1, #del, 1000 do redis.call('DEL', unpack(del, a, math.min(#del, a + 999))) end
  rdirty, rlist = {}, {}
  for pod, l in pairs(elist) do
    local ek = P .. 'e:' .. pod
    local c = ecache[pod]
    local hs, hd = {}, {}
    for _, e in ipairs(l) do
      local v = c[e]
      if v then hs[#hs + 1] = e; hs[#hs + 1] = v else hd[#hd + 1] = e end
    end
    for a = 1, #hs, 1000 do redis.call('HSET', ek, unpack(hs, a, math.min(#hs, a + 999))) end
    for a = 1, #hd, 1000 do redis.call('HDEL', ek, unpack(hd, a, math.min(#hd, a + 999))) end
    edirty[pod], elist[pod] = {}, {}
  end
  if dKeys ~= 0 then redis.call('HINCRBY', META, 'keys', dKeys) end
  if dEntries ~= 0 then redis.call('HINCRBY', META, 'entries', dEntries) end
  if dEngine ~= 0 then redis.call('HINCRBY', META, 'engine', dEngine) end
  dKeys, dEntries, dEngine = 0, 0, 0
end

-- ---- records ----
-- (start, end incl. '\\n', refs) of the record of (pod, tag) in v, or nil
local function findRec(v, pod, tag)
  local needle = pod .. '\\t' .. tag
  local init = 1
  while true do
    local a, b = find(v, needle, init, true)
    if not a then return nil end
    if a == 1 or byte(v, a - 1) == 10 then
      local c = byte(v, b + 1)
      if c == 10 then return a, b + 1, 1 end
      if c == 42 then
        local e = find(v, '\\n', b + 1, true)
        return a, e, tonumber(sub(v, b + 2, e - 1))
      end
    end
    init = a + 1
  end
end
-- does pod have a record in v (confirmed only, or any)?
local function podIn(v, pod, confirmedOnly)
  if not v then return false end
  local needle = pod .. '\\t'
  local init = 1
  while true do
    local a, b = find(v, needle, init, true)
    if not a then return false end
    if (a == 1 or byte(v, a - 1) == 10) and not (confirmedOnly and byte(v, b + 1) == 126) then return true end
    init = a + 1
  end
end
local function rec(pod, tag, refs)
  if refs > 1 then return pod .. '\\t' .. tag .. '*' .. refs .. '\\n' end
  return pod .. '\\t' .. tag .. '\\n'
end
-- one more reference; returns true when the pod was not at h before (only worked out when 'track')
local function addAt(h, pod, tag, track)
  local k = rkey(h)
  local v = rget(k)
  if not v then
    rset(k, rec(pod, tag, 1))
    dEntries = dEntries + 1
    return true
  end
  local a, e, refs = findRec(v, pod, tag)
  if a then
    rset(k, sub(v, 1, a - 1) .. rec(pod, tag, refs + 1) .. sub(v, e + 1))
    return false
  end
  local fresh = track and not podIn(v, pod, false)
  rset(k, v .. rec(pod, tag, 1))
  dEntries = dEntries + 1
  return fresh
end
-- one reference less; the record goes at zero; the pod's set forgets h when it holds nothing there
-- ('untrack' false: the caller knows h is not in the set, e.g. a speculative reservation)
local function evictAt(h, pod, tag, untrack)
  local k = rkey(h)
  local v = rget(k)
  if not v then return end
  local a, e, refs = findRec(v, pod, tag)
  if not a then return end
  if refs > 1 then
    rset(k, sub(v, 1, a - 1) .. rec(pod, tag, refs - 1) .. sub(v, e + 1))
    return
  end
  local nv = sub(v, 1, a - 1) .. sub(v, e + 1)
  rset(k, nv ~= '' and nv or false)
  dEntries = dEntries - 1
  removed = removed + 1
  if untrack ~= false and not podIn(nv, pod, false) then redis.call('SREM', P .. 'p:' .. pod, h) end
end
-- Expire speculative reservations whose deadline passed (at most 'limit'). A member is
-- "<seq>\\n<gen>\\n<pod>\\n<hex keys>"; a pod cleared since (generation moved on) is skipped.
local function sweep(limit)
  local due = redis.call('ZRANGEBYSCORE', SPEC, '-inf', now(), 'LIMIT', 0, limit)
  for _, m in ipairs(due) do
    local _, gen, pod, hexes = string.match(m, '^([^\\n]*)\\n([^\\n]*)\\n([^\\n]*)\\n(.*)$')
    if pod and (redis.call('HGET', GEN, pod) or '0') == gen then
      for j = 1, #hexes, 16 do evictAt(sub(hexes, j, j + 15), pod, '~gpu', false) end
    end
    redis.call('ZREM', SPEC, m)
  end
  return #due
end
`;

/**
 * Apply a batch of writes in order. ARGV[2..] is a sequence of ops:
 *   'a' pod tag reqHex engHex      add one reference (tag: tier or ~tier); engHex '' = no mapping
 *   'e' pod tag keyHex kind(e|r)   evict one reference via an engine or a request key
 *   'c' pod                        clear every entry and engine mapping of pod
 *   's' pod ttlMs reqHex           speculative (~gpu) references expiring ttlMs from now
 *   'w' key                        INCR key (the writer's batch counter; expires after 7 days)
 * Returns the number of (key, entry) pairs that disappeared.
 */
export const APPLY_SCRIPT = `${PRELUDE}
local podsSeen = {}
local function seePod(pod)
  if podsSeen[pod] then return end
  podsSeen[pod] = true
  if redis.call('ZSCORE', PODS, pod) == false then
    redis.call('ZADD', PODS, 'NX', redis.call('HINCRBY', META, 'podseq', 1), pod)
  end
end
-- 'track': record the keys in the pod's set. Not needed when clear(pod) finds them anyway:
-- through the pod's engine map (adds with engine keys) or the reservation queue (addSpeculative).
local function addKeys(pod, tag, req, track)
  local names, hs = {}, {}
  local n = 0
  for j = 1, #req, 16 do
    n = n + 1
    local h = sub(req, j, j + 15)
    hs[n] = h
    names[n] = P .. 'r:' .. h
  end
  rprefetch(names)
  local fresh = {}
  local one = pod .. '\\t' .. tag .. '\\n'
  for x = 1, n do
    local k = names[x]
    if rcache[k] == false then
      -- fast path: a key nobody holds yet
      rcache[k] = one
      if not rdirty[k] then rdirty[k] = true; rlist[#rlist + 1] = k end
      dKeys = dKeys + 1
      dEntries = dEntries + 1
      if track then fresh[#fresh + 1] = hs[x] end
    elseif addAt(hs[x], pod, tag, track) and track then
      fresh[#fresh + 1] = hs[x]
    end
  end
  for a = 1, #fresh, 1000 do redis.call('SADD', P .. 'p:' .. pod, unpack(fresh, a, math.min(#fresh, a + 999))) end
  return hs
end
-- Engine key -> request keys of one pod, llm-d's ratio mapping. The list keeps each request
-- key once; a newly seen one goes last (it is the parent for the next block).
local function mapEngine(pod, engHex, hs)
  local nE, nR = #engHex / 16, #hs
  local n = math.max(nE, nR)
  local es = {}
  for ei = 0, nE - 1 do es[ei + 1] = sub(engHex, ei * 16 + 1, ei * 16 + 16) end
  eprefetch(pod, es)
  if nE == nR then
    -- same block size: engine key i -> request key i
    local c, d, l = ecache[pod], edirty[pod], elist[pod]
    for x = 1, n do
      local e, r = es[x], hs[x]
      local cur = c[e]
      if not cur then
        c[e] = r
        dEngine = dEngine + 1
        if not d[e] then d[e] = true; l[#l + 1] = e end
      elseif cur ~= r and not find(cur, r, 1, true) then
        eset(pod, e, cur .. r)
      elseif cur ~= r then
        -- a plain find can straddle two entries: check aligned positions
        local seen = false
        for j = 1, #cur, 16 do
          if sub(cur, j, j + 15) == r then seen = true; break end
        end
        if not seen then eset(pod, e, cur .. r) end
      end
    end
    return
  end
  for i = 0, n - 1 do
    local e = es[math.floor(i * nE / n) + 1]
    local r = hs[math.floor(i * nR / n) + 1]
    local cur = eget(pod, e)
    if not cur then
      eset(pod, e, r)
    else
      local seen = false
      for j = 1, #cur, 16 do
        if sub(cur, j, j + 15) == r then seen = true; break end
      end
      if not seen then eset(pod, e, cur .. r) end
    end
  end
end
local function evictEngine(e, pod, tag)
  local m = eget(pod, e)
  if not m then return end
  local held = false
  for j = 1, #m, 16 do
    local h = sub(m, j, j + 15)
    evictAt(h, pod, tag, nil)
    if not held and podIn(rget(rkey(h)), pod, true) then held = true end
  end
  -- forget the mapping once the pod holds none of its request keys
  if not held then eset(pod, e, false) end
end
local function clearPod(pod)
  -- the pod's request keys: its set, its engine map's targets, its pending reservations
  writeBack()
  local pk = P .. 'p:' .. pod
  local ek = P .. 'e:' .. pod
  local names, seen = {}, {}
  local function see(h)
    if not seen[h] then
      seen[h] = true
      names[#names + 1] = rkey(h)
    end
  end
  for _, h in ipairs(redis.call('SMEMBERS', pk)) do see(h) end
  local map = redis.call('HGETALL', ek)
  for j = 2, #map, 2 do
    local m = map[j]
    for x = 1, #m, 16 do see(sub(m, x, x + 15)) end
  end
  for _, m in ipairs(redis.call('ZRANGE', SPEC, 0, -1)) do
    local _, _, p, hexes = string.match(m, '^([^\\n]*)\\n([^\\n]*)\\n([^\\n]*)\\n(.*)$')
    if p == pod then
      for x = 1, #hexes, 16 do see(sub(hexes, x, x + 15)) end
    end
  end
  rprefetch(names)
  local needle = pod .. '\\t'
  for _, k in ipairs(names) do
    local v = rget(k)
    if v then
      local keep, n = {}, 0
      for r in gmatch(v, '[^\\n]*\\n') do
        if sub(r, 1, #needle) == needle then n = n + 1 else keep[#keep + 1] = r end
      end
      if n > 0 then
        local nv = table.concat(keep)
        rset(k, nv ~= '' and nv or false)
        dEntries = dEntries - n
        removed = removed + n
      end
    end
  end
  redis.call('DEL', pk)
  -- drop the pod's whole engine map (pending mappings were written back above)
  dEngine = dEngine - #map / 2
  redis.call('UNLINK', ek)
  ecache[pod] = nil
  edirty[pod] = nil
  elist[pod] = nil
  -- pending speculative expiries of this pod no longer apply
  redis.call('HINCRBY', GEN, pod, 1)
end

local i = 2
local nargs = #ARGV
while i <= nargs do
  local op = ARGV[i]
  if op == 'a' then
    local pod, tag, req, eng = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
    seePod(pod)
    local mapped = #eng > 0 and #req > 0 and byte(tag, 1) ~= 126
    local hs = addKeys(pod, tag, req, not mapped)
    if mapped then mapEngine(pod, eng, hs) end
    i = i + 5
  elseif op == 'e' then
    local pod, tag, key, kind = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
    if kind == 'e' then evictEngine(key, pod, tag) else evictAt(key, pod, tag, nil) end
    i = i + 5
  elseif op == 's' then
    local pod, ttl, req = ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
    seePod(pod)
    addKeys(pod, '~gpu', req, false)
    local seq = redis.call('HINCRBY', META, 'seq', 1)
    local gen = redis.call('HGET', GEN, pod) or '0'
    redis.call('ZADD', SPEC, now() + ttl, seq .. '\\n' .. gen .. '\\n' .. pod .. '\\n' .. req)
    i = i + 4
  elseif op == 'c' then
    clearPod(ARGV[i + 1])
    i = i + 2
  elseif op == 'w' then
    redis.call('INCR', ARGV[i + 1])
    redis.call('PEXPIRE', ARGV[i + 1], 604800000)
    i = i + 2
  else
    writeBack()
    return redis.error_reply('kvr apply: unknown op ' .. tostring(op) .. ' at ' .. i)
  end
end
writeBack()
return removed
`;

/**
 * Longest prefix in one call. ARGV[2] = request keys as concatenated hex, ARGV[3] = allowed
 * pods joined by '\\n' (ARGV[6] = '1' when a filter is given), ARGV[4] = tier weights
 * "tier=w,..." (unknown tiers 1.0), ARGV[5] = weight of a speculative entry.
 * First expires due speculative entries (bounded), then reads the keys in growing MGET
 * chunks, keeping the pods that held every block so far, and stops at the first block none
 * of them holds. A run of blocks with the same holders is parsed once.
 * Returns a flat array: hits, entries expired, then per pod: pod, blocks, weighted (as %.17g
 * text so the double survives).
 */
export const LOOKUP_SCRIPT = `${PRELUDE}
if redis.call('ZCOUNT', SPEC, '-inf', now()) > 0 then
  sweep(200)
  writeBack()
end
local hexes = ARGV[2]
local n = #hexes / 16
local filter = nil
if ARGV[6] == '1' then
  filter = {}
  for p in gmatch(ARGV[3], '[^\\n]+') do filter[p] = true end
end
local weights = {}
for tier, w in gmatch(ARGV[4], '([^,=]+)=([^,]+)') do weights[tier] = tonumber(w) end
local specW = tonumber(ARGV[5])
local memo = {}
local function parse(v)
  local t = {}
  for pod, mark, tier in gmatch(v, '([^\\t\\n]+)\\t(~?)([^\\t\\n*]+)[^\\n]*\\n') do
    if filter == nil or filter[pod] then
      local w
      if mark == '~' then w = specW else w = weights[tier] or 1 end
      local b = t[pod]
      if b == nil or w > b then t[pod] = w end
    end
  end
  return t
end
local act, nact = {}, 0
local order, curW, blocks, sums = {}, {}, {}, {}
local prev = nil
local run = 0
local hits = 0
local function flushRun()
  if run == 0 then return end
  for k = 1, nact do
    local pod = act[k]
    local w = curW[pod]
    local s = sums[pod]
    for _ = 1, run do s = s + w end
    sums[pod] = s
    blocks[pod] = blocks[pod] + run
  end
  run = 0
end
local i, chunk, stop = 0, 16, false
while i < n and not stop do
  local m = math.min(chunk, n - i)
  local names = {}
  for j = 1, m do
    local at = (i + j - 1) * 16
    names[j] = P .. 'r:' .. sub(hexes, at + 1, at + 16)
  end
  local vals = redis.call('MGET', unpack(names))
  for j = 1, m do
    local v = vals[j]
    if not v then stop = true; break end
    if v ~= prev then
      flushRun()
      local t = memo[v]
      if not t then t = parse(v); memo[v] = t end
      if prev == nil then
        for pod, w in pairs(t) do
          nact = nact + 1
          act[nact] = pod
          order[nact] = pod
          curW[pod] = w
          blocks[pod] = 0
          sums[pod] = 0
        end
      else
        local k2 = 0
        for k = 1, nact do
          local pod = act[k]
          local w = t[pod]
          if w then
            k2 = k2 + 1
            act[k2] = pod
            curW[pod] = w
          end
        end
        nact = k2
      end
      if nact == 0 then stop = true; break end
      prev = v
    end
    run = run + 1
    hits = hits + 1
  end
  i = i + m
  chunk = math.min(chunk * 4, 2048)
end
flushRun()
local out = { hits, removed }
for _, pod in ipairs(order) do
  out[#out + 1] = pod
  out[#out + 1] = blocks[pod]
  out[#out + 1] = string.format('%.17g', sums[pod])
end
return out
`;

/** Expire due speculative reservations. ARGV[2] = max reservations per call. Returns { due, entries removed }. */
export const SWEEP_SCRIPT = `${PRELUDE}
local due = sweep(tonumber(ARGV[2]))
writeBack()
return { due, removed }
`;

/**
 * The last request key of an engine key. ARGV[2] = engine key hex, ARGV[3] = pod ('' = the
 * first pod, in order of appearance, that maps it). Returns 16 hex digits or false.
 */
export const ENGINE_SCRIPT = `
local P = ARGV[1]
local m
if ARGV[3] ~= '' then
  m = redis.call('HGET', P .. 'e:' .. ARGV[3], ARGV[2])
else
  for _, pod in ipairs(redis.call('ZRANGE', P .. 'pods', 0, -1)) do
    m = redis.call('HGET', P .. 'e:' .. pod, ARGV[2])
    if m then break end
  end
end
if not m then return false end
return string.sub(m, -16)
`;
