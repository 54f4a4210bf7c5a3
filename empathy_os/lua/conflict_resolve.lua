-- Record the resolution of a conflict context, exactly once.
-- KEYS[2] the conflict hash
-- ARGV[4] conflict id   ARGV[5] resolution JSON   ARGV[6] validator id
-- Returns the conflict hash (flat field/value list).
if redis.call('EXISTS', KEYS[2]) == 0 then
    return fail('NOT_FOUND', 'no conflict ' .. ARGV[4] .. ' in team ' .. TEAM)
end
local by = redis.call('HGET', KEYS[2], 'resolved_by')
if by then
    return fail('ALREADY_DONE', 'conflict ' .. ARGV[4] .. ' was already resolved by ' .. by)
end
redis.call('HSET', KEYS[2], 'resolution', ARGV[5], 'resolved_by', ARGV[6], 'resolved_at', NOW_S)
emit('conflict.resolved', 'conflict', ARGV[4], 'agent', ARGV[6])
return redis.call('HGETALL', KEYS[2])
