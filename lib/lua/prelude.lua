-- prelude.lua: what every script of this crate shares; scripts.rs puts it in front of each.
-- It is the Lua side of the Redis store's protocol (store/redis_store/protocol.rs holds the
-- same constants for the Rust side; a test keeps the two equal).
-- It defines constants and functions only; each script states its own keys and arguments.

-- A lock reserved for a waiter holds this followed by the waiter's id.
local HANDOFF_PREFIX = 'ac-redislock:handoff:'
-- Announcements: 'w' followed by the id of a waiter a lock was reserved for (it takes it
-- itself), 'g' followed by the id of a waiter a lock was given to (and ':' and its fencing
-- token when it asked for one), both written by hand_off; or TO_KEY followed by a key whose
-- waiters should all retry.
local TO_KEY = 'k'
-- Where keys freed for all are announced (and hand-offs to waiters registered by earlier
-- versions, whose registration is their bare id).
local RELEASED_CHANNEL = 'ac-redislock:released'
-- Each client listens on this followed by its id, for the hand-offs to its own waiters.
local WAKE_PREFIX = 'ac-redislock:wake:'

-- A holder label (opt-in, written by acquire.lua with the lock it labels), the value of the
-- lock's holder companion key, a string with the lock's expiry:
--   <digest>|<since ms>|<label>
-- digest: the first HOLDER_DIGEST hex digits of the SHA-1 of the lock's value, so status.lua
-- reports the label only while the key holds the value it was written for (a lock taken by
-- another after ours expired, by a plain SET NX, never shows our label); a digest cannot be
-- used to release or extend the lock. since ms: the server's time when the hold began.
-- label: the text, to the end. The lock's own value is never changed.
local HOLDER_DIGEST = 16

-- A waiter's registration, a member of the waiters set (scored by its expiry, server ms):
--   <waiter id>|<client id>|<ttl ms>|<fencing: 1 or 0>|<token>
-- client id: the hex id whose channel (WAKE_PREFIX .. id) the waiter's client listens on, or
-- empty for a waiter that polls; ttl ms: 0 when the waiter takes a lock handed to it itself
-- (only a reservation is made for it); token: the value it locks with (anything, to the end).

-- Hands the lock at lock_key to the waiter that has waited longest since its last attempt,
-- and wakes only that waiter. When the waiter's client is listening on this server (PUBSUB
-- NUMSUB of its channel), the lock is given to it outright: it holds the waiter's token for
-- the waiter's ttl (and a fencing token, drawn here), and the announcement tells it so, so it
-- needs no round trip of its own. Otherwise the lock is reserved for the waiter for
-- reservation_ms (it takes it with its next attempt; if it has died, that costs one
-- reservation). Expired registrations are dropped first (looked for only when the first one
-- has expired). A waiters key of another type, which this crate never writes, is passed over.
-- Returns false, changing nothing but dropping expired registrations, when no waiter is left.
-- It captures nothing of this prelude (a function that does costs the server upvalues at every
-- call of every script), so the protocol's constants come as its last arguments.
local function hand_off(lock_key, waiters_key, fence_key, reservation_ms, handoff_prefix,
                        released_channel, wake_prefix)
  local first = redis.pcall('ZRANGE', waiters_key, 0, 0, 'WITHSCORES')
  if first.err or not first[1] then
    return false
  end
  local time = redis.call('TIME')
  local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local member = first[1]
  if tonumber(first[2]) <= now_ms then
    redis.call('ZREMRANGEBYSCORE', waiters_key, '-inf', now_ms)
    member = redis.call('ZRANGE', waiters_key, 0, 0)[1]
    if not member then
      return false
    end
  end
  local waiter, client, ttl, fencing, token =
    string.match(member, '^([^|]*)|([^|]*)|(%d+)|([01])|(.*)$')
  local channel = waiter and client ~= '' and wake_prefix .. client
  -- pcall: a user whose ACL predates the waiters' channels (no PUBSUB NUMSUB, no channel
  -- WAKE_PREFIX*) still releases; its waiters find their reservations by polling.
  local listening = channel and ttl ~= '0' and redis.pcall('PUBSUB', 'NUMSUB', channel)
  local given = listening and not listening.err and listening[2] > 0
  -- Read before anything is written: a fencing counter of another type raises WRONGTYPE here.
  local last = given and fencing == '1' and redis.call('GET', fence_key)
  redis.call('ZREM', waiters_key, member)
  if not waiter then
    -- Registered by an earlier version: its bare id.
    redis.call('SET', lock_key, handoff_prefix .. member, 'PX', reservation_ms)
    redis.call('PUBLISH', released_channel, 'w' .. member)
    return true
  end
  if given then
    local message = 'g' .. waiter
    if fencing == '1' then
      -- As acquire.lua draws it: never below the server's clock in microseconds.
      local now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])
      local fence = string.format('%d', math.max((tonumber(last) or 0) + 1, now_us))
      redis.call('SET', fence_key, fence, 'PX', 86400000)
      message = message .. ':' .. fence
    end
    redis.call('SET', lock_key, token, 'PX', ttl)
    redis.call('PUBLISH', channel, message)
    return true
  end
  redis.call('SET', lock_key, handoff_prefix .. waiter, 'PX', reservation_ms)
  if channel then
    redis.pcall('PUBLISH', channel, 'w' .. waiter)
  end
  return true
end

