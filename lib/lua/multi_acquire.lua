-- multi_acquire.lua: take several locks together, all or none. Each key stays a mutex as
-- acquire.lua takes it (it holds the token, with PX expiry). A key counts as free if it does
-- not exist, is reserved for this waiter by a release (prelude.lua, hand_off), or holds the
-- token after an earlier try of the same acquisition (a retry whose lost first try landed, or
-- an earlier attempt of this waiter). If every key is free, all are taken; else none is:
-- nothing is held while waiting, so callers with overlapping sets never deadlock. A key
-- reserved for this waiter (or holding its token) is then passed on as a release would pass
-- it, and the waiter is registered on the first held key only, for a reservation (its
-- registration's ttl is 0): that key's release reserves it for the waiter and wakes it.
-- KEYS[1]: the first lock key. KEYS[2]: its waiters (sorted set, see acquire.lua).
-- KEYS[3]: its fencing counter (read by hand_off). Then the same three for each further lock,
-- KEYS[3i-2], KEYS[3i-1], KEYS[3i] for the i-th: #KEYS is three times the lock count.
-- ARGV[1]: token. ARGV[2]: ttl ms. ARGV[3]: waiter id, or '' when the caller does not wait.
-- ARGV[4]: waiter registration lease ms. ARGV[5]: the waiter's registration (see
-- prelude.lua; its ttl 0), or ''. ARGV[6]: '1' when this retries an attempt whose answer was
-- lost with its connection. ARGV[7]: '1' when this waiter registered before, in the same
-- acquisition. ARGV[8]: reservation ms (for a key passed on).
-- Returns {1, -1} when every key was taken, {0, PTTL of the first held key} when none was.
-- A non-string lock key raises WRONGTYPE (from GET) before anything is written.
local n = #KEYS / 3
local token = ARGV[1]
local waiter = ARGV[3]
local reserved = waiter ~= '' and HANDOFF_PREFIX .. waiter
local again = ARGV[6] == '1' or ARGV[7] == '1'
-- Every key is read before anything is written.
local held = false
local handed = {}
for i = 1, n do
  local current = redis.call('GET', KEYS[3 * i - 2])
  if current then
    if current == reserved or (again and current == token) then
      handed[#handed + 1] = i
    elseif not held then
      held = i
    end
  end
end
-- A registration made before (by an earlier attempt, or by a lost first try) leaves every
-- queue; a waiters key of another type raises WRONGTYPE here, before a lock is written.
if waiter ~= '' and again then
  for i = 1, n do
    redis.call('ZREM', KEYS[3 * i - 1], ARGV[5])
  end
end
if not held then
  for i = 1, n do
    redis.call('SET', KEYS[3 * i - 2], token, 'PX', ARGV[2])
  end
  return {1, -1}
end
-- Not all: what was handed to this waiter goes on to the next one, or is freed.
for _, i in ipairs(handed) do
  if not hand_off(KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i], ARGV[8], HANDOFF_PREFIX,
                  RELEASED_CHANNEL, WAKE_PREFIX) then
    redis.call('DEL', KEYS[3 * i - 2])
  end
end
if waiter ~= '' then
  local time = redis.call('TIME')
  local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  redis.call('ZADD', KEYS[3 * held - 1], now_ms + tonumber(ARGV[4]), ARGV[5])
  redis.call('PEXPIRE', KEYS[3 * held - 1], ARGV[4])
end
return {0, redis.call('PTTL', KEYS[3 * held - 2])}
