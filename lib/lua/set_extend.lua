-- set_extend.lua: sets a new expiry on a hold of a lease set (lease_set.lua) if it is still
-- there; never makes it anew. Waiters that a purge of expired holds lets in are woken.
-- KEYS[1]: the set (sorted set: hold -> its expiry, server ms). KEYS[2]: the waiters' queue.
-- KEYS[3]: the waiters' leases (both as in set_acquire.lua).
-- ARGV[1]: the hold (<count>|<token>, or x|<token>). ARGV[2]: ttl ms.
-- Returns 1 if the hold was there (live) and was extended, 0 if not. A key of another type
-- raises WRONGTYPE, writing nothing.
local now_ms = set_now()
local dropped = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
local extended = 0
-- ZADD XX INCR 0: the hold's score if it is there (changing nothing), nil if not.
if redis.call('ZADD', KEYS[1], 'XX', 'INCR', 0, ARGV[1]) then
  redis.call('ZADD', KEYS[1], 'XX', set_int(now_ms + tonumber(ARGV[2])), ARGV[1])
  extended = 1
end
if extended == 0 and dropped == 0 then
  return 0
end
local holds, shares, exclusive, _, _, last = set_tally(KEYS[1], now_ms, false)
set_expire(KEYS[1], last, now_ms)
if dropped > 0 and not exclusive then
  local live = set_queue(KEYS[2], KEYS[3], now_ms)
  set_wake(live, false, holds, shares, exclusive, WAKE_PREFIX)
end
return extended
