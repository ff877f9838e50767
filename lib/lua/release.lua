-- release.lua: compare-and-delete, the atomic form of the Node original's GET-then-DEL. When
-- waiters are registered, the lock is handed to the one that has waited longest since its last
-- attempt instead: the key holds a reservation for that waiter for a moment, and only that
-- waiter is woken, so a release costs one wake-up, not one per waiter. The waiter is taken off
-- the queue as it is chosen.
-- KEYS[1]: lock key. KEYS[2]: waiters (sorted set, see acquire.lua).
-- ARGV[1]: the value the caller holds the lock with. ARGV[2]: reservation ms.
-- ARGV[3]: wake-up channel.
-- Returns 1 if the key held ARGV[1] and was released, 0 if the key does not exist,
-- -1 if it holds another value (left untouched). A non-string key raises WRONGTYPE.
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  if redis.call('EXISTS', KEYS[2]) == 1 then
    local time = redis.call('TIME')
    local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms)
    local next_waiter = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
    if next_waiter then
      -- The chosen waiter leaves the queue: if it never comes for the lock (its process died),
      -- it costs one reservation, and the next release goes to the next waiter. A live waiter
      -- that misses its reservation registers again at its next attempt.
      redis.call('ZREM', KEYS[2], next_waiter)
      redis.call('SET', KEYS[1], 'ac-redislock:handoff:' .. next_waiter, 'PX', ARGV[2])
      redis.call('PUBLISH', ARGV[3], 'w' .. next_waiter)
      return 1
    end
  end
  redis.call('DEL', KEYS[1])
  return 1
end
if current == false then
  return 0
end
return -1
