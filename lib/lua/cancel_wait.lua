-- cancel_wait.lua: a waiter gives up: drop its registration, and if the lock was reserved for
-- the waiters and none is left, free it at once rather than when the reservation expires.
-- KEYS[1]: lock key. KEYS[2]: waiters (sorted set, see acquire.lua). ARGV[1]: waiter id.
-- Returns 1 if the registration existed, 0 if not.
local removed = redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 0 and redis.call('GET', KEYS[1]) == 'ac-redislock:handoff' then
  redis.call('DEL', KEYS[1])
end
return removed
