-- cancel_wait.lua: a waiter gives up: drop its registration, and if the lock was reserved for
-- it, pass the reservation on (prelude.lua, hand_off), or free the lock when no waiter is left.
-- KEYS[1]: lock key. KEYS[2]: waiters (sorted set, see acquire.lua).
-- ARGV[1]: waiter id. ARGV[2]: reservation ms. ARGV[3]: wake-up channel.
-- Returns 1 if the registration existed, 0 if not.
local removed = redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('GET', KEYS[1]) == HANDOFF_PREFIX .. ARGV[1] then
  if not hand_off(KEYS[1], KEYS[2], ARGV[2], ARGV[3], HANDOFF_PREFIX, TO_WAITER) then
    redis.call('DEL', KEYS[1])
  end
end
return removed
