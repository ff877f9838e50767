-- release.lua: compare-and-delete, the atomic form of the Node original's GET-then-DEL. When
-- waiters are registered, the lock is handed to one of them instead (prelude.lua, hand_off),
-- so a release costs one wake-up, not one per waiter.
-- The lock's holder label (see prelude.lua) goes with it, whoever takes the lock next.
-- KEYS[1]: lock key. KEYS[2]: waiters (sorted set, see acquire.lua). KEYS[3]: fencing counter.
-- KEYS[4]: holder label.
-- ARGV[1]: the value the caller holds the lock with. ARGV[2]: reservation ms.
-- Returns 1 if the key held ARGV[1] and was released, 0 if the key does not exist,
-- -1 if it holds another value (left untouched). A non-string key raises WRONGTYPE.
-- `current`: the lock's value, read by release_head.lua (which released it already if no one
-- waits).
if current == ARGV[1] then
  -- (A waiters key of another type, which this crate never writes, is passed over: the lock
  -- is released all the same.)
  if hand_off(KEYS[1], KEYS[2], KEYS[3], ARGV[2], HANDOFF_PREFIX, RELEASED_CHANNEL,
              WAKE_PREFIX) then
    redis.call('DEL', KEYS[4])
  else
    -- One command for both: a release without a label costs no command more.
    redis.call('DEL', KEYS[1], KEYS[4])
  end
  return 1
end
if current == false then
  return 0
end
return -1
