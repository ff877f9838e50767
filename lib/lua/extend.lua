-- extend.lua: compare-and-PEXPIRE. Never creates the key: an expired lock stays expired.
-- The holder label (see prelude.lua), if any, gets the same expiry.
-- KEYS[1]: lock key. KEYS[2]: holder label. ARGV[1]: token. ARGV[2]: new ttl ms.
-- Returns 1 if extended, 0 if the key does not exist, -1 if it holds another value.
-- A non-string key raises WRONGTYPE.
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  return 1
end
if current == false then
  return 0
end
return -1
