-- prelude.lua: what every script of this crate shares; scripts.rs puts it in front of each.
-- It is the Lua side of the Redis store's protocol (store/redis_store/protocol.rs holds the
-- same constants for the Rust side; a test keeps the two equal).
-- It defines constants and functions only; each script states its own keys and arguments.

-- A lock reserved for a waiter holds this followed by the waiter's id.
local HANDOFF_PREFIX = 'ac-redislock:handoff:'
-- Release announcements: TO_WAITER followed by the id of the waiter the lock was handed to,
-- or TO_KEY followed by a key whose waiters should all retry.
local TO_WAITER = 'w'
local TO_KEY = 'k'

-- Hands the lock at lock_key to the waiter that has waited longest since its last attempt:
-- the key holds a reservation for that waiter for reservation_ms, the waiter leaves the queue
-- (if it never comes, it costs one reservation) and only it is woken. Expired registrations
-- are dropped first. Returns false, changing nothing, when no waiter is left.
-- It captures nothing of this prelude (a function that does costs the server upvalues at every
-- call of every script), so the protocol's constants come as its last two arguments.
local function hand_off(lock_key, waiters_key, reservation_ms, channel, prefix, to_waiter)
  local time = redis.call('TIME')
  local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', waiters_key, '-inf', now_ms)
  local next_waiter = redis.call('ZRANGE', waiters_key, 0, 0)[1]
  if not next_waiter then
    return false
  end
  redis.call('ZREM', waiters_key, next_waiter)
  redis.call('SET', lock_key, prefix .. next_waiter, 'PX', reservation_ms)
  redis.call('PUBLISH', channel, to_waiter .. next_waiter)
  return true
end

