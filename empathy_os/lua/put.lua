-- Write one JSON value with a TTL and record the event.
-- KEYS[2] the value's key
-- ARGV[4] JSON value   ARGV[5] ttl seconds   ARGV[6] "nx" to create only if absent, else ""
-- ARGV[7] event kind   ARGV[8..] event field/value pairs
-- Returns 1 when written, 0 when "nx" was asked and the key exists.
local written
if ARGV[6] == 'nx' then
    written = redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[5], 'NX')
else
    written = redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[5])
end
if not written then return 0 end
emit(ARGV[7], unpack(ARGV, 8))
return 1
