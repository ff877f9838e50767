-- force_release.lua: delete a lock whoever holds it (the Node original's release without a
-- value), but never a key of another type: a lock library must not delete someone's list.
-- Waiters, if any, are woken.
-- The holder label (see prelude.lua) goes with the lock.
-- KEYS[1]: lock key. KEYS[2]: waiters (sorted set, see acquire.lua). KEYS[3]: holder label.
-- No ARGV.
-- Returns 1 if a lock was deleted, 0 if the key does not exist; raises WRONGTYPE (key left
-- untouched) if it holds a non-string value.
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'string' then
  redis.call('DEL', KEYS[1], KEYS[3])
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('PUBLISH', RELEASED_CHANNEL, TO_KEY .. KEYS[1])
  end
  return 1
end
if kind == 'none' then
  return 0
end
return redis.error_reply('WRONGTYPE key holds a ' .. kind .. ', not a lock')
