-- multi_release.lua: compare-and-delete of several locks taken together (multi_acquire.lua):
-- every key that holds the token is released as release.lua releases it, handed to one of its
-- waiters if it has any (prelude.lua, hand_off); keys holding anything else are left alone.
-- KEYS[1]: the first lock key. KEYS[2]: its waiters (sorted set, see acquire.lua).
-- KEYS[3]: its fencing counter. Then the same three for each further lock (KEYS[3i-2],
-- KEYS[3i-1], KEYS[3i]): #KEYS is three times the lock count.
-- ARGV[1]: the token. ARGV[2]: reservation ms.
-- Returns 1 if every key held the token (all released), -1 if some key holds another value,
-- else 0 if some key did not exist; the keys that held the token are released in every case.
-- A non-string lock key raises WRONGTYPE (from GET) before anything is written.
local n = #KEYS / 3
local values = {}
for i = 1, n do
  values[i] = redis.call('GET', KEYS[3 * i - 2])
end
local outcome = 1
for i = 1, n do
  local current = values[i]
  if current == ARGV[1] then
    if not hand_off(KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i], ARGV[2], HANDOFF_PREFIX,
                    RELEASED_CHANNEL, WAKE_PREFIX) then
      redis.call('DEL', KEYS[3 * i - 2])
    end
  elseif current == false then
    if outcome == 1 then
      outcome = 0
    end
  else
    outcome = -1
  end
end
return outcome
