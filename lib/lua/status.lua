-- status.lua: a read-only snapshot of a lock, for tools. Never returns the lock's value.
-- KEYS[1]: lock key. KEYS[2]: waiters (sorted set, see acquire.lua). KEYS[3]: fencing counter.
-- No ARGV.
-- Returns {state, pttl, fencing counter or -1, waiters}: state 0 free, 1 held, 2 reserved for
-- waiters (hand-off), 3 a key of another type; pttl as PTTL gives it (-1 no expiry, -2 none).
local kind = redis.call('TYPE', KEYS[1])['ok']
local state = 0
if kind == 'string' then
  local value = redis.call('GET', KEYS[1])
  if string.sub(value, 1, #HANDOFF_PREFIX) == HANDOFF_PREFIX then
    state = 2
  else
    state = 1
  end
elseif kind ~= 'none' then
  state = 3
end
local fence = -1
if redis.call('TYPE', KEYS[3])['ok'] == 'string' then
  fence = tonumber(redis.call('GET', KEYS[3])) or -1
end
local waiters = 0
if redis.call('TYPE', KEYS[2])['ok'] == 'zset' then
  waiters = redis.call('ZCARD', KEYS[2])
end
return {state, redis.call('PTTL', KEYS[1]), fence, waiters}
