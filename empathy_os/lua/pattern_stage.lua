-- Stage a pattern for validation. Only the agent that staged a pattern may overwrite it.
-- KEYS[2] staged hash   KEYS[3] staged order zset
-- ARGV[4] pattern id   ARGV[5] agent id   ARGV[6] pattern JSON   ARGV[7] '1' if the caller is a steward
-- Returns 1 when newly staged, 0 when an existing staging was updated.
local existing = redis.call('HGET', KEYS[2], ARGV[4])
if existing and ARGV[7] ~= '1' then
    local owner = cjson.decode(existing).agent_id
    if owner ~= ARGV[5] then
        return fail('NOT_OWNER', 'pattern ' .. ARGV[4] .. ' was staged by ' .. owner .. '; only it may overwrite it')
    end
end
redis.call('HSET', KEYS[2], ARGV[4], ARGV[6])
if not existing then redis.call('ZADD', KEYS[3], NOW_S, ARGV[4]) end
emit('pattern.staged', 'pattern', ARGV[4], 'agent', ARGV[5])
if existing then return 0 end
return 1
