-- release.lua: compare-and-delete, the atomic form of the Node original's GET-then-DEL.
-- KEYS[1]: lock key. ARGV[1]: the value the caller holds the lock with.
-- Returns 1 if the key held ARGV[1] and was deleted, 0 if the key does not exist,
-- -1 if it holds another value (left untouched). A non-string key raises WRONGTYPE.
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
if current == false then
  return 0
end
return -1
