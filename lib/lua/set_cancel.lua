-- set_cancel.lua: a waiter of a lease set (lease_set.lua) gives up: its registration leaves
-- both companions, and the waiters its leaving lets in (it may have held back those behind
-- it, or been woken and not come) are woken.
-- KEYS[1]: the set (sorted set: hold -> its expiry, server ms). KEYS[2]: the waiters' queue.
-- KEYS[3]: the waiters' leases (both as in set_acquire.lua).
-- ARGV[1]: the waiter's registration.
-- Returns 1 if the registration was in the queue, 0 if not. A companion of another type
-- raises WRONGTYPE.
local now_ms = set_now()
local removed = redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local holds, shares, exclusive, _, _, _, dropped = set_tally(KEYS[1], now_ms, false)
if (removed == 1 or dropped > 0) and not exclusive then
  local live = set_queue(KEYS[2], KEYS[3], now_ms)
  set_wake(live, false, holds, shares, exclusive, WAKE_PREFIX)
end
return removed
