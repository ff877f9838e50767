-- status.lua: a read-only snapshot of a lock, for tools. Never returns the lock's value.
-- KEYS[1]: lock key. KEYS[2]: waiters (sorted set, see acquire.lua). KEYS[3]: fencing counter.
-- KEYS[4]: holder label (see prelude.lua). No ARGV.
-- Returns {state, pttl, fencing counter or -1, waiters, label, since ms, now ms}: state 0 free,
-- 1 held, 2 reserved for waiters (hand-off), 3 a key of another type; pttl as PTTL gives it
-- (-1 no expiry, -2 none); label the holder label of a held lock, reported only when it was
-- written for the value the key holds now, else '' (and since and now -1); since the server's
-- time (ms) when the hold began, now the server's time.
local kind = redis.call('TYPE', KEYS[1])['ok']
local state = 0
local value = false
if kind == 'string' then
  value = redis.call('GET', KEYS[1])
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
local label, since, now_ms = '', -1, -1
if state == 1 and redis.call('TYPE', KEYS[4])['ok'] == 'string' then
  local digest, begun, text =
    string.match(redis.call('GET', KEYS[4]), '^(%x+)|(%d+)|(.*)$')
  if digest and text ~= '' and digest == string.sub(redis.sha1hex(value), 1, HOLDER_DIGEST) then
    local time = redis.call('TIME')
    label = text
    since = tonumber(begun)
    now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  end
end
return {state, redis.call('PTTL', KEYS[1]), fence, waiters, label, since, now_ms}
