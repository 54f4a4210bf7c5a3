-- Claim the best pending tasks for an agent: highest priority first, FIFO within a priority.
-- Expired leases are reaped first. With no type given, the agent's registered capabilities are used.
-- KEYS[2] agents hash   KEYS[3] agents:seen zset
-- ARGV[7] agent id      ARGV[8] lease length (ms)   ARGV[9] task type or ''
-- ARGV[10] how many to claim: '' for one (returns the task's hash as a flat field/value list, or
--          nil when nothing is pending); n for up to n (returns a list of such hashes, maybe empty)
reap()
local agent = ARGV[7]
local types
if ARGV[9] ~= '' then
    types = {ARGV[9]}
else
    local rec = redis.call('HGET', KEYS[2], agent)
    if not rec then
        return fail('NOT_REGISTERED', 'agent ' .. agent .. ' is not registered in team ' .. TEAM ..
            '; register it with capabilities or pass a task_type')
    end
    types = cjson.decode(rec).capabilities
end
redis.call('ZADD', KEYS[3], NOW_S, agent)
local deadline = fmt(NOW + tonumber(ARGV[8]))

local ONE_TYPE = #types == 1 and BASE .. 'tasks:pending:' .. types[1]

local function claim_one()
    local best_id, best_type
    if ONE_TYPE then
        best_id, best_type = redis.call('ZPOPMIN', ONE_TYPE)[1], types[1]
        if not best_id then return nil end
    else
        local best_score
        for _, task_type in ipairs(types) do
            local top = redis.call('ZRANGE', BASE .. 'tasks:pending:' .. task_type, 0, 0, 'WITHSCORES')
            if top[1] and (best_score == nil or tonumber(top[2]) < best_score) then
                best_id, best_score, best_type = top[1], tonumber(top[2]), task_type
            end
        end
        if not best_id then return nil end
        redis.call('ZREM', BASE .. 'tasks:pending:' .. best_type, best_id)
    end
    redis.call('ZREM', PENDING, best_id)
    local tkey = task_key(best_id)
    -- HGETALL, not HMGET of the fields: a small hash is a listpack, where each HMGET field is a scan.
    local flat = redis.call('HGETALL', tkey)
    local out, log_n, attempt = {}, nil, 1
    local changes = {status = 'in_progress', holder = agent, lease_deadline = deadline, claimed_at = NOW_S}
    for i = 1, #flat, 2 do
        local field, value = flat[i], flat[i + 1]
        if field == 'attempts' then
            attempt = tonumber(value) + 1
            value = tostring(attempt)
        elseif changes[field] then
            value = changes[field]
            changes[field] = nil
        elseif field == 'log_n' then
            log_n, value = value, nil
        elseif string.sub(field, 1, 4) == 'log:' then  -- the history is not part of the reply
            value = nil
        end
        if value then
            out[#out + 1] = field
            out[#out + 1] = value
        end
    end
    for field, value in pairs(changes) do
        out[#out + 1] = field
        out[#out + 1] = value
    end
    local fields = {'attempts', attempt, 'status', 'in_progress', 'holder', agent, 'lease_deadline', deadline,
        'claimed_at', NOW_S}
    log_task(best_id, log_n, log_entry('claimed', agent, attempt), fields)
    redis.call('HSET', tkey, unpack(fields))
    redis.call('ZADD', LEASED, deadline, best_id)
    redis.call('SADD', leases_key(agent), best_id)
    emit('task.claimed', 'task', best_id, 'agent', agent, 'task_type', best_type)
    return out
end

if ARGV[10] == '' then return claim_one() or false end
local claimed = {}
for _ = 1, tonumber(ARGV[10]) do
    local flat = claim_one()
    if not flat then break end
    claimed[#claimed + 1] = flat
end
return claimed
