-- Complete a task: only its current holder, only while the lease holds, exactly once.
-- ARGV[7] task id   ARGV[8] agent id or '' (steward: whoever holds it)   ARGV[9] lease token or ''
-- ARGV[10] result JSON
-- Returns the holder credited with the completion.
local id = ARGV[7]
local t, err = held_task(id, ARGV[8], ARGV[9])
if not t then return err end
redis.call('HSET', task_key(id), 'status', 'completed', 'result', ARGV[10], 'finished_at', NOW_S, 'lease_deadline', '')
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
