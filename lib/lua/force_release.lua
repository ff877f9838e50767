-- force_release.lua: delete a lock whoever holds it (the Node original's release without a
-- value), but never a key of another type: a lock library must not delete someone's list.
-- KEYS[1]: lock key. No ARGV.
-- Returns 1 if a lock was deleted, 0 if the key does not exist; raises WRONGTYPE (key left
-- untouched) if it holds a non-string value.
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'string' then
  return redis.call('DEL', KEYS[1])
end
if kind == 'none' then
  return 0
end
return redis.error_reply('WRONGTYPE key holds a ' .. kind .. ', not a lock')
