-- lease_set.lua: what the lease-set scripts (set_*.lua: semaphores and read-write locks)
-- share; scripts.rs puts it after prelude.lua in front of each of them, and of no other
-- script. It defines functions only; each script states its own keys and arguments.
--
-- A lease set is a sorted set at the key, one member per hold, scored by the hold's expiry
-- (server ms, from TIME):
--   <count>|<token>   a shared hold of <count> shares (a semaphore's permits; 1 for a reader)
--   x|<token>         the exclusive hold (a writer)
-- Every script that writes drops the expired holds before it decides anything; after a change
-- the key's own expiry is its latest hold's, so an abandoned set disappears.
--
-- Waiters register in two companion sorted sets (in the key's hash slot), with one member:
--   <waiter id>|<client id>|<count, or x>|<limit, 0 for x>
-- the queue, scored by arrival (server microseconds at the first registration, kept by the
-- refreshes: ZADD NX), and alive, scored by the registration's expiry (server ms), refreshed
-- at each attempt. A registration whose expiry has passed, or that is missing from either
-- set, is dead, and dropped from both. client id: as in a lock's registration (prelude.lua),
-- empty for a waiter that polls.
--
-- Admission, strict FIFO: with H the live holds and A the live waiters ahead of the caller in
-- the queue (all of them for a caller not in it), the exclusive hold enters iff H and A are
-- empty; <count> shares out of <limit> enter iff no exclusive hold is in H or A and the shares
-- of H and A plus <count> are at most <limit>. So a waiting writer holds back the readers that
-- come after it, and a waiter that wants many permits holds back the waiters behind it.
--
-- Wake-ups (set_wake): after a release, a grant that took a waiter out of the queue, a
-- cancellation, or a purge of expired holds or dead registrations, the queue is walked from
-- its head, and each waiter that can enter now (by the same rule, counting those woken before
-- it in the walk as holding) is sent 'w' and its id on its client's channel; the walk stops at
-- the first that cannot. Never every waiter: no herd.
--
-- Like hand_off, these functions capture nothing (no upvalues): the channel prefix comes as an
-- argument.

-- An integer as a command argument (never in exponent form).
local function set_int(number)
  return string.format('%d', number)
end

-- The server's clock: milliseconds, microseconds.
local function set_now()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000),
    tonumber(time[1]) * 1000000 + tonumber(time[2])
end

-- Drops the expired holds of the set at key and counts the live ones. Returns the number of
-- holds, their shares, whether the exclusive hold is among them, whether the member mine is
-- (false: never), the earliest and the latest expiry (false when there is no hold), and how
-- many expired holds were dropped. A key of another type raises WRONGTYPE, writing nothing.
local function set_tally(key, now_ms, mine)
  local dropped = redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms)
  local holds = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  local shares, exclusive, found = 0, false, false
  for i = 1, #holds, 2 do
    local member = holds[i]
    if member == mine then
      found = true
    end
    local count = string.match(member, '^([^|]*)|')
    if count == 'x' then
      exclusive = true
    else
      shares = shares + (tonumber(count) or 0)
    end
  end
  local first = #holds > 0 and tonumber(holds[2])
  local last = #holds > 0 and tonumber(holds[#holds])
  return #holds / 2, shares, exclusive, found, first, last, dropped
end

-- The live registrations of the queue at queue_key (leases at alive_key), in arrival order,
-- each as {member, waiter, client, count, limit, expires}; the dead ones are dropped from both
-- sets. Returns that list and how many were dropped. A companion of another type raises
-- WRONGTYPE.
local function set_queue(queue_key, alive_key, now_ms)
  local alive = redis.call('ZRANGE', alive_key, 0, -1, 'WITHSCORES')
  local expiries = {}
  for i = 1, #alive, 2 do
    expiries[alive[i]] = tonumber(alive[i + 1])
  end
  local live, dead = {}, 0
  for _, member in ipairs(redis.call('ZRANGE', queue_key, 0, -1)) do
    local expires = expiries[member]
    local waiter, client, count, limit =
      string.match(member, '^([^|]*)|([^|]*)|([^|]*)|(%d+)$')
    if expires and expires > now_ms and waiter and (count == 'x' or tonumber(count)) then
      live[#live + 1] = {member = member, waiter = waiter, client = client, count = count,
                         limit = limit, expires = expires}
      expiries[member] = nil
    else
      redis.call('ZREM', queue_key, member)
      dead = dead + 1
    end
  end
  -- What is left of the leases stands for no live registration.
  for i = 1, #alive, 2 do
    if expiries[alive[i]] then
      redis.call('ZREM', alive_key, alive[i])
    end
  end
  return live, dead
end

-- Whether count shares ('x': the exclusive hold) out of limit enter, with holds holds (or
-- waiters ahead), shares shares among them, and the exclusive hold among them if exclusive.
local function set_fits(count, limit, holds, shares, exclusive)
  if count == 'x' then
    return holds == 0
  end
  return not exclusive and shares + tonumber(count) <= tonumber(limit)
end

-- Wakes the waiters of live (set_queue's list, in order; skip: a member to pass over, or
-- false) that can enter the set, which has holds holds, shares shares and the exclusive hold
-- if exclusive, each counted as holding for those behind it; stops at the first that cannot.
-- Returns how many were woken. (pcall: an ACL without the waiters' channels still releases;
-- its waiters poll.)
local function set_wake(live, skip, holds, shares, exclusive, wake_prefix)
  local woken = 0
  for _, waiting in ipairs(live) do
    if waiting.member ~= skip then
      local count = waiting.count
      if not set_fits(count, waiting.limit, holds, shares, exclusive) then
        break
      end
      local waiter = waiting.waiter
      if waiting.client ~= '' then
        redis.pcall('PUBLISH', wake_prefix .. waiting.client, 'w' .. waiter)
      end
      woken = woken + 1
      holds = holds + 1
      if count == 'x' then
        exclusive = true
      else
        shares = shares + tonumber(count)
      end
    end
  end
  return woken
end

-- Sets the expiry of key to last (server ms), if there is a last.
local function set_expire(key, last, now_ms)
  if last then
    redis.call('PEXPIRE', key, set_int(math.max(last - now_ms, 1)))
  end
end

