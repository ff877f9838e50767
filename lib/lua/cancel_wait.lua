-- cancel_wait.lua: a waiter gives up: drop its registration, and if the lock was handed to it
-- (reserved for it, or given to it with its token after its registration was taken out), pass
-- it on (prelude.lua, hand_off), or free the lock when no waiter is left.
-- A lock passed on or freed here loses its holder label (see prelude.lua).
-- KEYS[1]: lock key. KEYS[2]: waiters (sorted set, see acquire.lua). KEYS[3]: fencing counter.
-- KEYS[4]: holder label.
-- ARGV[1]: waiter id. ARGV[2]: its registration (see prelude.lua). ARGV[3]: its token.
-- ARGV[4]: reservation ms.
-- Returns 1 if the registration existed, 0 if not.
local removed = redis.call('ZREM', KEYS[2], ARGV[2])
local current = redis.call('GET', KEYS[1])
if current == HANDOFF_PREFIX .. ARGV[1] or (removed == 0 and current == ARGV[3]) then
  if hand_off(KEYS[1], KEYS[2], KEYS[3], ARGV[4], HANDOFF_PREFIX, RELEASED_CHANNEL,
              WAKE_PREFIX) then
    redis.call('DEL', KEYS[4])
  else
    redis.call('DEL', KEYS[1], KEYS[4])
  end
end
return removed
