-- Promote or reject a staged pattern, exactly once even with validators racing.
-- KEYS[2] staged hash   KEYS[3] staged order zset   KEYS[4] the pattern's decision key
-- ARGV[4] pattern id   ARGV[5] 'promoted' | 'rejected'   ARGV[6] decision JSON (without the pattern)
-- ARGV[7] decision ttl seconds
-- Returns the staged pattern's JSON.
local pattern = redis.call('HGET', KEYS[2], ARGV[4])
if not pattern then
    local prior = redis.call('GET', KEYS[4])
    if prior then
        local d = cjson.decode(prior)
        return fail('ALREADY_DONE', 'pattern ' .. ARGV[4] .. ' was already ' .. d.decision .. ' by ' .. d.decided_by)
    end
    return fail('NOT_FOUND', 'no staged pattern ' .. ARGV[4] .. ' in team ' .. TEAM)
end
redis.call('HDEL', KEYS[2], ARGV[4])
redis.call('ZREM', KEYS[3], ARGV[4])
redis.call('SET', KEYS[4], ARGV[6], 'EX', ARGV[7])
local d = cjson.decode(ARGV[6])
emit('pattern.' .. ARGV[5], 'pattern', ARGV[4], 'agent', d.decided_by)
return pattern
