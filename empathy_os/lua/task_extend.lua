-- Renew the lease on one task (holder only, before it expires).
-- ARGV[7] task id   ARGV[8] agent id or ''   ARGV[9] lease token or ''   ARGV[10] lease length (ms)
-- Returns the new deadline (ms since the epoch).
local id = ARGV[7]
local t, err = held_task(id, ARGV[8], ARGV[9])
if not t then return err end
local deadline = NOW + tonumber(ARGV[10])
redis.call('HSET', task_key(id), 'lease_deadline', fmt(deadline))
redis.call('ZADD', LEASED, fmt(deadline), id)
emit('task.lease_extended', 'task', id, 'agent', t.holder, 'task_type', t.task_type)
return deadline
