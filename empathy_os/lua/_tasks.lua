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

-- Lease history: the last 50 entries, kept in the task hash itself as fields `log:<n>` (n = 1, 2, ...;
-- `log_n` is the last n), written by the HSET the op makes anyway; past 50 entries the oldest field
-- goes (one HDEL). An entry is "event|at ms|agent|attempt|reason" (empty when absent; the reason,
-- free text, last): short, so a small task hash stays a listpack (values up to 64 bytes), and no
-- cjson. `empathy_os.coordinator.task_history` reads it back as {event, at, agent, attempt, reason}.
-- A task added before the history moved into the hash has no `log_n`: its entries go on to the old
-- list `task:<id>:log` (JSON, RPUSH, last 50), which the readers still read.
local function log_entry(event, agent, attempt, reason)
    return event .. '|' .. NOW_S .. '|' .. (agent or '') .. '|' .. (attempt or '') .. '|' .. (reason or '')
end

-- Append `entry` to the history of task `id`, whose `log_n` is `n` (false/nil: old format). Adds the
-- fields to write to the `fields` list of the op's HSET (hash format) or pushes it on the old list.
local function log_task(id, n, entry, fields)
    if not n then
        local key = task_key(id) .. ':log'
        local e, at, agent, attempt, reason = string.match(entry, '^(%a+)|(%d+)|([^|]*)|(%d*)|(.*)$')
        entry = {event = e, at = tonumber(at), reason = reason ~= '' and reason or nil,
            agent = agent ~= '' and agent or nil, attempt = tonumber(attempt)}
        if redis.call('RPUSH', key, cjson.encode(entry)) > 50 then redis.call('LTRIM', key, -50, -1) end
        return
    end
    n = tonumber(n) + 1
    if n > 50 then redis.call('HDEL', task_key(id), 'log:' .. (n - 50)) end
    fields[#fields + 1] = 'log_n'
    fields[#fields + 1] = n
    fields[#fields + 1] = 'log:' .. n
    fields[#fields + 1] = entry
end

local function drop_task(id)
    redis.call('DEL', task_key(id), task_key(id) .. ':log')
end

-- Index a finished task in `zkey` and give its record a TTL (and its old-format history list, when
-- `old_log`). Every 16th finish (`n` counts them) also trims the index by age and by count, so the
-- count limit may be passed by up to 15.
local function finish(id, zkey, n, old_log)
    redis.call('ZADD', zkey, NOW_S, id)
    redis.call('EXPIRE', task_key(id), RETAIN_S)
    if old_log then redis.call('EXPIRE', task_key(id) .. ':log', RETAIN_S) end
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
        local fields = {'status', 'pending', 'lease_deadline', '', 'reason', why}
        log_task(id, t.log_n, log_entry('requeued', t.holder, attempts, why), fields)
        redis.call('HSET', tkey, unpack(fields))
        enqueue(id, t.task_type, t.score)
        emit('task.requeued', 'task', id, 'agent', t.holder or '', 'task_type', t.task_type)
        return 'pending'
    end
    local reason = why
    if retry then reason = why .. ' (gave up after ' .. attempts .. ' of ' .. max .. ' attempts)' end
    local fields = {'status', 'failed', 'lease_deadline', '', 'reason', reason, 'finished_at', NOW_S}
    log_task(id, t.log_n, log_entry('failed', t.holder, attempts, reason), fields)
    redis.call('HSET', tkey, unpack(fields))
    local n = redis.call('HINCRBY', RESULTS, 'total_failed', 1)
    redis.call('HINCRBY', RESULTS, 'failed_type:' .. t.task_type, 1)
    finish(id, BASE .. 'tasks:failed', n, not t.log_n)
    emit('task.failed', 'task', id, 'agent', t.holder or '', 'task_type', t.task_type)
    return 'failed'
end

local function load_task(id)
    local v = redis.call('HMGET', task_key(id), 'status', 'holder', 'lease_deadline', 'attempts',
        'max_attempts', 'task_type', 'score', 'claimed_at', 'log_n')
    if not v[1] then return nil end
    return {status = v[1], holder = v[2], deadline = tonumber(v[3]), attempts = v[4],
        max_attempts = v[5], task_type = v[6], score = v[7], claimed_at = tonumber(v[8]), log_n = v[9]}
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
    local fields = {'status', 'completed', 'result', result, 'finished_at', NOW_S, 'lease_deadline', ''}
    log_task(id, t.log_n, log_entry('completed', t.holder, t.attempts), fields)
    redis.call('HSET', task_key(id), unpack(fields))
    redis.call('ZREM', LEASED, id)
    redis.call('SREM', leases_key(t.holder), id)
    local n = redis.call('HINCRBY', RESULTS, 'total_completed', 1)
    redis.call('HINCRBY', RESULTS, 'agent:' .. t.holder, 1)
    redis.call('HINCRBY', RESULTS, 'type:' .. t.task_type, 1)
    redis.call('HINCRBY', RESULTS, 'duration_ms', NOW - (t.claimed_at or NOW))
    finish(id, BASE .. 'tasks:completed', n, not t.log_n)
    emit('task.completed', 'task', id, 'agent', t.holder, 'task_type', t.task_type)
    return t.holder
end
