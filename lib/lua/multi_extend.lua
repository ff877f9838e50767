-- multi_extend.lua: compare-and-PEXPIRE of several locks taken together (multi_acquire.lua),
-- all or none: only when every key holds the token are they all given the new ttl. Never
-- creates a key.
-- KEYS[1]: the first lock key; KEYS[i]: the i-th (one key per lock, as many as #KEYS).
-- ARGV[1]: token. ARGV[2]: new ttl ms.
-- Returns 1 if all were extended; else, nothing changed, -1 if some key holds another value,
-- or 0 if some key does not exist. A non-string key raises WRONGTYPE.
local outcome = 1
for i = 1, #KEYS do
  local current = redis.call('GET', KEYS[i])
  if current == false then
    if outcome == 1 then
      outcome = 0
    end
  elseif current ~= ARGV[1] then
    outcome = -1
  end
end
if outcome == 1 then
  for i = 1, #KEYS do
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
  end
end
return outcome
