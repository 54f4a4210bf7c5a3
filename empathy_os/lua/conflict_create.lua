-- Create a conflict context (once; an existing conflict id is an error).
-- KEYS[2] the conflict hash
-- ARGV[4] conflict id   ARGV[5] context JSON   ARGV[6] creator   ARGV[7] ttl seconds
if redis.call('HSETNX', KEYS[2], 'context', ARGV[5]) == 0 then
    return fail('EXISTS', 'conflict ' .. ARGV[4] .. ' already exists in team ' .. TEAM)
end
redis.call('HSET', KEYS[2], 'conflict_id', ARGV[4], 'created_by', ARGV[6], 'created_at', NOW_S)
redis.call('EXPIRE', KEYS[2], ARGV[7])
emit('conflict.created', 'conflict', ARGV[4], 'agent', ARGV[6])
return 1
