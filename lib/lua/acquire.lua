-- acquire.lua: take the lock if it is free, or reserved for this waiter by a release (see
-- release.lua); otherwise register the caller as a waiter and report how long the holder has
-- left. Used when waiting or fencing; a plain attempt is the Node original's SET NX.
-- KEYS[1]: lock key. KEYS[2]: waiters (sorted set: waiter id -> registration expiry, server ms).
-- KEYS[3]: fencing counter.
-- ARGV[1]: token. ARGV[2]: ttl ms. ARGV[3]: waiter id, or '' when the caller does not wait.
-- ARGV[4]: waiter registration lease ms. ARGV[5]: '1' to draw a fencing token, '0' not.
-- ARGV[6]: '1' when this retries an attempt whose answer was lost with its connection.
-- Returns {1, fencing token or -1} when granted, {0, PTTL of the key} when not.
-- A non-string lock key raises WRONGTYPE (from GET) and is left untouched.
local current = redis.call('GET', KEYS[1])
local waiter = ARGV[3]
-- A retry that finds the lock holding its token: the lost attempt took it.
local retaken = ARGV[6] == '1' and current == ARGV[1]
if current == false or retaken or (waiter ~= '' and current == HANDOFF_PREFIX .. waiter) then
  -- The companions first: one of another type raises WRONGTYPE before anything is written.
  local last = ARGV[5] == '1' and redis.call('GET', KEYS[3])
  if waiter ~= '' then
    redis.call('ZREM', KEYS[2], waiter)
  end
  if not retaken then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  end
  local fence = -1
  if ARGV[5] == '1' then
    if retaken and tonumber(last) then
      -- No one was granted since: the counter still holds the token the lost attempt drew.
      fence = tonumber(last)
    else
      -- Never below the server's clock in microseconds: if the counter is lost (a restart
      -- without persistence, an eviction), tokens go on above every earlier one.
      local time = redis.call('TIME')
      local now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])
      fence = math.max((tonumber(last) or 0) + 1, now_us)
      redis.call('SET', KEYS[3], string.format('%d', fence), 'PX', 86400000)
    end
  end
  return {1, fence}
end
if waiter ~= '' then
  local time = redis.call('TIME')
  local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  redis.call('ZADD', KEYS[2], now_ms + tonumber(ARGV[4]), waiter)
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
return {0, redis.call('PTTL', KEYS[1])}
