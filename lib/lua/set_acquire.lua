-- set_acquire.lua: one attempt at a hold of a lease set (a semaphore's permits, a read or a
-- write hold of a read-write lock; lease_set.lua has the format and the admission rule): take
-- it if it enters now, else register the caller as a waiter (when it waits) and report how
-- long until a hold or a registration ahead of it expires.
-- KEYS[1]: the set (sorted set: hold -> its expiry, server ms). KEYS[2]: the waiters' queue
-- (sorted set: registration -> arrival, server us). KEYS[3]: the waiters' leases (sorted set:
-- registration -> its expiry, server ms). KEYS[4]: fencing counter.
-- ARGV[1]: the hold (<count>|<token>, or x|<token>). ARGV[2]: ttl ms. ARGV[3]: limit (of a
-- shared hold). ARGV[4]: the caller's registration, or '' when it does not wait.
-- ARGV[5]: registration lease ms. ARGV[6]: '1' to draw a fencing token (exclusive hold only).
-- ARGV[7]: '1' when this retries an attempt whose answer was lost with its connection.
-- Returns {1, fencing token or -1} when granted, {0, ms until the earliest hold or
-- registration ahead expires, or -1} when not. A key of another type raises WRONGTYPE, the
-- grant unwritten (expired holds and dead registrations may have been dropped).
local now_ms, now_us = set_now()
local member, registration = ARGV[1], ARGV[4]
local count = string.match(member, '^([^|]*)|')
local holds, shares, exclusive, mine, first, last, dropped =
  set_tally(KEYS[1], now_ms, member)
local live, dead = set_queue(KEYS[2], KEYS[3], now_ms)
local fencing = ARGV[6] == '1' and count == 'x'
-- Read before the grant is written: a counter of another type raises WRONGTYPE here.
local counter = fencing and redis.call('GET', KEYS[4])
-- The live waiters ahead of the caller: all of them when it is not in the queue.
local ahead, ahead_shares, ahead_exclusive, queued, soonest = 0, 0, false, false, first
for _, waiting in ipairs(live) do
  if waiting.member == registration then
    queued = true
    break
  end
  ahead = ahead + 1
  if waiting.count == 'x' then
    ahead_exclusive = true
  else
    ahead_shares = ahead_shares + tonumber(waiting.count)
  end
  if not soonest or waiting.expires < soonest then
    soonest = waiting.expires
  end
end
local granted
if mine then
  -- The hold is there already: ours if a lost first try took it; otherwise the token is
  -- asked for a second hold, which one member cannot stand for: refused.
  granted = ARGV[7] == '1'
else
  granted = set_fits(count, ARGV[3], holds + ahead, shares + ahead_shares,
                     exclusive or ahead_exclusive)
end
if granted then
  -- Also when it is ours already: the lease is counted from this attempt.
  local expires = now_ms + tonumber(ARGV[2])
  redis.call('ZADD', KEYS[1], set_int(expires), member)
  set_expire(KEYS[1], math.max(last or 0, expires), now_ms)
  if registration ~= '' then
    redis.call('ZREM', KEYS[2], registration)
    redis.call('ZREM', KEYS[3], registration)
  end
  local fence = -1
  if fencing then
    if mine and tonumber(counter) then
      -- No exclusive hold was granted since: the counter holds the token drawn with ours.
      fence = tonumber(counter)
    else
      -- As acquire.lua draws it: never below the server's clock in microseconds.
      fence = math.max((tonumber(counter) or 0) + 1, now_us)
      redis.call('SET', KEYS[4], set_int(fence), 'PX', 86400000)
    end
  end
  if not mine then
    holds = holds + 1
    if count == 'x' then
      exclusive = true
    else
      shares = shares + tonumber(count)
    end
  end
  -- Leaving the queue may let those behind in; so may a purge.
  if queued or dropped > 0 or dead > 0 then
    set_wake(live, registration, holds, shares, exclusive, WAKE_PREFIX)
  end
  return {1, fence}
end
-- A purge may have let in waiters ahead (the walk stops at the caller at the latest).
if dropped > 0 or dead > 0 then
  set_wake(live, false, holds, shares, exclusive, WAKE_PREFIX)
end
if registration ~= '' then
  redis.call('ZADD', KEYS[2], 'NX', set_int(now_us), registration)
  local latest = now_ms + tonumber(ARGV[5])
  redis.call('ZADD', KEYS[3], set_int(latest), registration)
  for _, waiting in ipairs(live) do
    latest = math.max(latest, waiting.expires)
  end
  -- The companions live as long as their last registration.
  set_expire(KEYS[2], latest, now_ms)
  set_expire(KEYS[3], latest, now_ms)
end
if soonest then
  return {0, soonest - now_ms}
end
return {0, -1}
