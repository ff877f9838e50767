-- cancel_wait.lua: a waiter gives up: drop its registration, and if the lock was reserved for
-- it, pass the reservation to the next waiter (or free the lock when there is none).
-- KEYS[1]: lock key. KEYS[2]: waiters (sorted set, see acquire.lua).
-- ARGV[1]: waiter id. ARGV[2]: reservation ms. ARGV[3]: wake-up channel.
-- Returns 1 if the registration existed, 0 if not.
local removed = redis.call('ZREM', KEYS[2], ARGV[1])
local current = redis.call('GET', KEYS[1])
if current == 'ac-redislock:handoff:' .. ARGV[1] then
  local time = redis.call('TIME')
  local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms)
  local next_waiter = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if next_waiter then
    redis.call('ZREM', KEYS[2], next_waiter)
    redis.call('SET', KEYS[1], 'ac-redislock:handoff:' .. next_waiter, 'PX', ARGV[2])
    redis.call('PUBLISH', ARGV[3], 'w' .. next_waiter)
  else
    redis.call('DEL', KEYS[1])
  end
end
return removed
