-- Promote or reject a staged pattern, exactly once even with validators racing.
-- KEYS[2] staged hash   KEYS[3] staged order zset   KEYS[4] the pattern's decision key
-- KEYS[5] the pattern's review lock
-- ARGV[4] pattern id   ARGV[5] 'promoted' | 'rejected'   ARGV[6] decision JSON (without the pattern)
-- ARGV[7] decision ttl seconds
-- Returns the staged pattern's JSON; or {holder, remaining ms} (nothing changes) when another
-- validator holds the pattern's review lock. A decision releases the lock.
local pattern = redis.call('HGET', KEYS[2], ARGV[4])
if not pattern then return not_staged(ARGV[4], KEYS[4]) end
local d = cjson.decode(ARGV[6])
local holder = redis.call('GET', KEYS[5])
if holder and holder ~= d.decided_by then
    return {holder, redis.call('PTTL', KEYS[5])}
end
redis.call('HDEL', KEYS[2], ARGV[4])
redis.call('ZREM', KEYS[3], ARGV[4])
redis.call('SET', KEYS[4], ARGV[6], 'EX', ARGV[7])
if holder then redis.call('DEL', KEYS[5]) end
emit('pattern.' .. ARGV[5], 'pattern', ARGV[4], 'agent', d.decided_by)
return pattern
