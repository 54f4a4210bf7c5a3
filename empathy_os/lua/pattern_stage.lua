-- Stage a pattern for validation. Only the agent that staged a pattern may overwrite it.
-- KEYS[2] staged hash   KEYS[3] staged order zset
-- ARGV[4] pattern id   ARGV[5] agent id   ARGV[6] pattern JSON   ARGV[7] '1' if the caller is a steward
-- ARGV[8] staged pattern limit of the team   ARGV[9] retention of staged patterns (seconds)
-- First removes (at most 100) patterns staged longer ago than the retention, each with a
-- `pattern.expired` event; then refuses a new pattern (FULL) when the team has the limit staged.
-- Returns 1 when newly staged, 0 when an existing staging was updated.
local STAGED, ORDER = KEYS[2], KEYS[3]
local expired = redis.call('ZRANGEBYSCORE', ORDER, '-inf', '(' .. fmt(NOW - tonumber(ARGV[9]) * 1000), 'LIMIT', 0, 100)
for _, old_id in ipairs(expired) do
    local old = redis.call('HGET', STAGED, old_id)
    local owner = old and cjson.decode(old).agent_id or ''
    redis.call('HDEL', STAGED, old_id)
    redis.call('ZREM', ORDER, old_id)
    emit('pattern.expired', 'pattern', old_id, 'agent', owner)
end
local existing = redis.call('HGET', STAGED, ARGV[4])
if existing and ARGV[7] ~= '1' then
    local owner = cjson.decode(existing).agent_id
    if owner ~= ARGV[5] then
        return fail('NOT_OWNER', 'pattern ' .. ARGV[4] .. ' was staged by ' .. owner .. '; only it may overwrite it')
    end
end
if not existing then
    local staged = redis.call('ZCARD', ORDER)
    if staged >= tonumber(ARGV[8]) then
        return fail('FULL', 'team ' .. TEAM .. ' has ' .. staged .. ' patterns staged, its limit (staged_pattern_limit); '
            .. 'pattern ' .. ARGV[4] .. ' was not staged: validators must promote or reject some first')
    end
end
redis.call('HSET', STAGED, ARGV[4], ARGV[6])
if not existing then redis.call('ZADD', ORDER, NOW_S, ARGV[4]) end
emit('pattern.staged', 'pattern', ARGV[4], 'agent', ARGV[5])
if existing then return 0 end
return 1
