-- set_release.lua: ends a hold of a lease set (lease_set.lua), then wakes the waiters that can
-- enter now.
-- KEYS[1]: the set (sorted set: hold -> its expiry, server ms). KEYS[2]: the waiters' queue.
-- KEYS[3]: the waiters' leases (both as in set_acquire.lua).
-- ARGV[1]: the hold (<count>|<token>, or x|<token>).
-- Returns 1 if the hold was there (live) and was ended, 0 if not. A key of another type
-- raises WRONGTYPE, writing nothing.
local now_ms = set_now()
local dropped = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
if removed == 0 and dropped == 0 then
  return 0
end
local holds, shares, exclusive, _, _, last = set_tally(KEYS[1], now_ms, false)
set_expire(KEYS[1], last, now_ms)
if not exclusive then
  local live = set_queue(KEYS[2], KEYS[3], now_ms)
  set_wake(live, false, holds, shares, exclusive, WAKE_PREFIX)
end
return removed
