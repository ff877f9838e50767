-- release_head.lua: the release's common case, in front of the prelude (scripts.rs puts it
-- there, and release.lua after the prelude): the key holds the caller's value and no one
-- waits, so the lock and its holder label go in one DEL. Taken here, before the prelude's
-- definitions run, the common case costs the server none of them.
-- KEYS[1]: lock key. KEYS[2]: waiters. KEYS[4]: holder label (release.lua states them all).
-- ARGV[1]: the value the caller holds the lock with.
-- Returns 1 when it released the lock; else release.lua goes on, with `current` (the lock's
-- value, false for none) read here.
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] and redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[1], KEYS[4])
  return 1
end
