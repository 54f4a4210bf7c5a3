-- Prepended (after _common.lua) to the task scripts (task_*.lua).
-- Shared ARGV of task scripts:
--   ARGV[4]  retention of finished tasks (seconds)   ARGV[5]  retention count per kind
--   ARGV[6]  expired leases reaped per call
-- Script-specific ARGV start at ARGV[7].
-- Per-task keys are derived from BASE ("P:{team:T}:"), so they share the team's hash tag.
local RETAIN_S, RETAIN_N, REAP_LIMIT = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local PENDING, LEASED = BASE .. 'tasks:pending', BASE .. 'tasks:leased'
local RESULTS = BASE .. 'results'

local function task_key(id) return BASE .. 'task:' .. id end
local function leases_key(agent) return BASE .. 'agent:' .. agent .. ':leases' end

-- Append an entry to the task's lease history (last 50 kept).
local function log_task(id, entry)
    entry.at = NOW
    local key = task_key(id) .. ':log'
    if redis.call('RPUSH', key, cjson.encode(entry)) > 50 then redis.call('LTRIM', key, -50, -1) end
end

local function drop_task(id)
    redis.call('DEL', task_key(id), task_key(id) .. ':log')
end

-- Index a finished task in `zkey` and give its record a TTL. Every 16th finish (`n` counts them)
-- also trims the index by age and by count, so the count limit may be passed by up to 15.
local function finish(id, zkey, n)
    redis.call('ZADD', zkey, NOW_S, id)
    redis.call('EXPIRE', task_key(id), RETAIN_S)
    redis.call('EXPIRE', task_key(id) .. ':log', RETAIN_S)
    if n % 16 ~= 0 then return end
    local old = redis.call('ZRANGEBYSCORE', zkey, '-inf', fmt(NOW - RETAIN_S * 1000), 'LIMIT', 0, 100)
    for _, old_id in ipairs(old) do
        drop_task(old_id)
        redis.call('ZREM', zkey, old_id)
    end
    local extra = redis.call('ZCARD', zkey) - RETAIN_N
    if extra > 0 then
        for _, old_id in ipairs(redis.call('ZRANGE', zkey, 0, extra - 1)) do drop_task(old_id) end
        redis.call('ZREMRANGEBYRANK', zkey, 0, extra - 1)
    end
end

local function enqueue(id, task_type, score)
    redis.call('ZADD', BASE .. 'tasks:pending:' .. task_type, score, id)
    redis.call('ZADD', PENDING, score, id)
end

-- Take the task out of its holder's hands: back to pending, or failed once attempts are used up.
-- `t` holds the task's holder, attempts, max_attempts, task_type, score.
local function release(id, t, why, retry)
    local tkey = task_key(id)
    redis.call('ZREM', LEASED, id)
    if t.holder and t.holder ~= '' then redis.call('SREM', leases_key(t.holder), id) end
    local attempts, max = tonumber(t.attempts) or 0, tonumber(t.max_attempts) or 1
    if retry and attempts < max then
        redis.call('HSET', tkey, 'status', 'pending', 'lease_deadline', '', 'reason', why)
        enqueue(id, t.task_type, t.score)
        log_task(id, {event = 'requeued', agent = t.holder, attempt = attempts, reason = why})
        emit('task.requeued', 'task', id, 'agent', t.holder or '', 'task_type', t.task_type)
        return 'pending'
    end
    local reason = why
    if retry then reason = why .. ' (gave up after ' .. attempts .. ' of ' .. max .. ' attempts)' end
    redis.call('HSET', tkey, 'status', 'failed', 'lease_deadline', '', 'reason', reason, 'finished_at', NOW_S)
    local n = redis.call('HINCRBY', RESULTS, 'total_failed', 1)
    redis.call('HINCRBY', RESULTS, 'failed_type:' .. t.task_type, 1)
    log_task(id, {event = 'failed', agent = t.holder, attempt = attempts, reason = reason})
    finish(id, BASE .. 'tasks:failed', n)
    emit('task.failed', 'task', id, 'agent', t.holder or '', 'task_type', t.task_type)
    return 'failed'
end

local function load_task(id)
    local v = redis.call('HMGET', task_key(id), 'status', 'holder', 'lease_deadline', 'attempts',
        'max_attempts', 'task_type', 'score', 'claimed_at')
    if not v[1] then return nil end
    return {status = v[1], holder = v[2], deadline = tonumber(v[3]), attempts = v[4],
        max_attempts = v[5], task_type = v[6], score = v[7], claimed_at = tonumber(v[8])}
end

-- Return expired leases to the queue (or fail them after max attempts).
local function reap()
    local expired = redis.call('ZRANGEBYSCORE', LEASED, '-inf', '(' .. NOW_S, 'LIMIT', 0, REAP_LIMIT)
    for _, id in ipairs(expired) do
        local t = load_task(id)
        if t and t.status == 'in_progress' then
            release(id, t, 'lease expired (holder ' .. (t.holder or '?') .. ')', true)
        else
            redis.call('ZREM', LEASED, id)
        end
    end
    return #expired
end

-- The checks every holder-only operation makes (fencing). Returns the task or an error reply.
-- agent == '' means "whoever holds it" (a steward acting for the team); token '' skips the token check.
local function held_task(id, agent, token)
    local t = load_task(id)
    if not t then return nil, fail('NOT_FOUND', 'task ' .. id .. ' does not exist in team ' .. TEAM) end
    if t.status == 'completed' or t.status == 'failed' then
        return nil, fail('ALREADY_DONE', 'task ' .. id .. ' is already ' .. t.status .. ' (holder ' .. (t.holder or '') .. ')')
    end
    if t.status ~= 'in_progress' then
        return nil, fail('NOT_HELD', 'task ' .. id .. ' is ' .. t.status .. ', not claimed by anyone; claim it first')
    end
    if agent ~= '' and t.holder ~= agent then
        return nil, fail('NOT_HELD', 'task ' .. id .. ' is held by ' .. t.holder .. ', not by ' .. agent)
    end
    if token ~= '' and t.attempts ~= token then
        return nil, fail('NOT_HELD', 'lease token ' .. token .. ' of task ' .. id .. ' is stale: it was claimed again (attempt ' .. t.attempts .. ')')
    end
    if t.deadline < NOW then
        return nil, fail('EXPIRED', 'the lease of ' .. t.holder .. ' on task ' .. id .. ' expired ' .. (NOW - t.deadline) .. ' ms ago; the task goes back to the queue')
    end
    return t
end

-- Complete one task held by `agent` ('' = whoever holds it) under lease `token` ('' = any).
-- Returns the holder credited, or an error reply.
local function complete_one(id, agent, token, result)
    local t, err = held_task(id, agent, token)
    if not t then return err end
    redis.call('HSET', task_key(id), 'status', 'completed', 'result', result, 'finished_at', NOW_S, 'lease_deadline', '')
    redis.call('ZREM', LEASED, id)
    redis.call('SREM', leases_key(t.holder), id)
    local n = redis.call('HINCRBY', RESULTS, 'total_completed', 1)
    redis.call('HINCRBY', RESULTS, 'agent:' .. t.holder, 1)
    redis.call('HINCRBY', RESULTS, 'type:' .. t.task_type, 1)
    redis.call('HINCRBY', RESULTS, 'duration_ms', NOW - (t.claimed_at or NOW))
    log_task(id, {event = 'completed', agent = t.holder, attempt = tonumber(t.attempts)})
    finish(id, BASE .. 'tasks:completed', n)
    emit('task.completed', 'task', id, 'agent', t.holder, 'task_type', t.task_type)
    return t.holder
end
