-- set_status.lua: a read-only snapshot of a lease set (lease_set.lua), for tools. Expired
-- holds and dead registrations are not counted (nor dropped). Never returns a token.
-- KEYS[1]: the set (sorted set: hold -> its expiry, server ms). KEYS[2]: the waiters' queue.
-- KEYS[3]: the waiters' leases (both as in set_acquire.lua). KEYS[4]: fencing counter.
-- No ARGV.
-- Returns {type of the key, shared holds, their shares, 1 if the exclusive hold is there else
-- 0, ms left of the latest hold or -1, live waiters, fencing counter or -1}; a key of another
-- type than zset (or none) is named and the rest left 0 or -1. Companions of another type
-- count as empty.
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'zset' and kind ~= 'none' then
  return {kind, 0, 0, 0, -1, 0, -1}
end
local now_ms = set_now()
local holds, shares, exclusive, latest = 0, 0, 0, -1
if kind == 'zset' then
  local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  for i = 1, #members, 2 do
    local expires = tonumber(members[i + 1])
    if expires > now_ms then
      local count = string.match(members[i], '^([^|]*)|')
      if count == 'x' then
        exclusive = 1
      else
        holds = holds + 1
        shares = shares + (tonumber(count) or 0)
      end
      latest = math.max(latest, expires - now_ms)
    end
  end
end
local waiters = 0
if redis.call('TYPE', KEYS[2])['ok'] == 'zset' and redis.call('TYPE', KEYS[3])['ok'] == 'zset' then
  local alive = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
  local expiries = {}
  for i = 1, #alive, 2 do
    expiries[alive[i]] = tonumber(alive[i + 1])
  end
  for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    if expiries[member] and expiries[member] > now_ms then
      waiters = waiters + 1
    end
  end
end
local fence = -1
if redis.call('TYPE', KEYS[4])['ok'] == 'string' then
  fence = tonumber(redis.call('GET', KEYS[4])) or -1
end
return {kind, holds, shares, exclusive, latest, waiters, fence}
