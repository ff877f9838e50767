-- multi_cancel.lua: a multi-key waiter gives up: drop its registration from the waiters of
-- every key (it is registered on one at most), and pass on any key a release reserved for it
-- (prelude.lua, hand_off), or free it when no waiter is left. Keys and waiters keys of another
-- type are passed over: they hold nothing of this waiter's.
-- KEYS[1]: the first lock key. KEYS[2]: its waiters (sorted set, see acquire.lua).
-- KEYS[3]: its fencing counter. Then the same three for each further lock (KEYS[3i-2],
-- KEYS[3i-1], KEYS[3i]): #KEYS is three times the lock count.
-- ARGV[1]: waiter id. ARGV[2]: its registration (see prelude.lua). ARGV[3]: reservation ms.
-- Returns how many registrations were removed.
local removed = 0
local reserved = HANDOFF_PREFIX .. ARGV[1]
for i = 1, #KEYS / 3 do
  local gone = redis.pcall('ZREM', KEYS[3 * i - 1], ARGV[2])
  if type(gone) == 'number' then
    removed = removed + gone
  end
  local current = redis.pcall('GET', KEYS[3 * i - 2])
  if current == reserved then
    if not hand_off(KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i], ARGV[3], HANDOFF_PREFIX,
                    RELEASED_CHANNEL, WAKE_PREFIX) then
      redis.call('DEL', KEYS[3 * i - 2])
    end
  end
end
return removed
