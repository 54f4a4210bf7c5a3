-- Delete one key and record the event (only when something was deleted).
-- KEYS[2] the key   ARGV[4] event kind   ARGV[5..] event field/value pairs
-- Returns the number of keys deleted.
local n = redis.call('DEL', KEYS[2])
if n > 0 then emit(ARGV[4], unpack(ARGV, 5)) end
return n
