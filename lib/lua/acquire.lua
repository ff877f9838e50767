-- acquire.lua: take the lock if it is free, or reserved for this waiter by a release (see
-- prelude.lua, hand_off); otherwise register the caller as a waiter and report how long the
-- holder has left. Used when waiting or fencing; a plain attempt is the Node original's SET NX.
-- KEYS[1]: lock key. KEYS[2]: waiters (sorted set: registration -> its expiry, server ms).
-- KEYS[3]: fencing counter. KEYS[4]: holder label (see prelude.lua).
-- ARGV[1]: token. ARGV[2]: ttl ms. ARGV[3]: waiter id, or '' when the caller does not wait.
-- ARGV[4]: waiter registration lease ms. ARGV[5]: '1' to draw a fencing token, '0' not.
-- ARGV[6]: '1' when this retries an attempt whose answer was lost with its connection.
-- ARGV[7]: the waiter's registration (see prelude.lua), or ''.
-- ARGV[8]: '1' when this waiter registered before, in the same acquisition.
-- ARGV[9]: the holder label to keep next to the lock, or '' for none (then KEYS[4] is left
-- alone: a label of an earlier holder there does not match the new value, see status.lua).
-- Returns {1, fencing token or -1} when granted, {0, PTTL of the key} when not.
-- A non-string lock key raises WRONGTYPE (from GET) and is left untouched.
local current = redis.call('GET', KEYS[1])
local waiter = ARGV[3]
-- The lock holds our token: a retry whose lost first try took it, or a lock given to this
-- waiter by a release (which took its registration out) and not yet heard of. (A registration
-- still there is taken out here too, and made again below: the attempt refreshes it anyway.)
local ours = current == ARGV[1]
  and (ARGV[6] == '1' or (ARGV[8] == '1' and redis.call('ZREM', KEYS[2], ARGV[7]) == 0))
if current == false or ours or (waiter ~= '' and current == HANDOFF_PREFIX .. waiter) then
  -- The companions first: one of another type raises WRONGTYPE before anything is written.
  local last = ARGV[5] == '1' and redis.call('GET', KEYS[3])
  -- A registration made by an earlier attempt (or by a lost first try) leaves the queue.
  if waiter ~= '' and (ARGV[8] == '1' or ARGV[6] == '1') then
    redis.call('ZREM', KEYS[2], ARGV[7])
  end
  -- Also when it is ours already: the lease is counted from this attempt.
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  if ARGV[9] ~= '' then
    local time = redis.call('TIME')
    local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
    local digest = string.sub(redis.sha1hex(ARGV[1]), 1, HOLDER_DIGEST)
    redis.call('SET', KEYS[4], digest .. '|' .. string.format('%d', now_ms) .. '|' .. ARGV[9],
               'PX', ARGV[2])
  end
  local fence = -1
  if ARGV[5] == '1' then
    if ours and tonumber(last) then
      -- No one was granted since: the counter holds the token drawn with the lock.
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
  redis.call('ZADD', KEYS[2], now_ms + tonumber(ARGV[4]), ARGV[7])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
return {0, redis.call('PTTL', KEYS[1])}
