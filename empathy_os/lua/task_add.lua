-- Add tasks to the queue; a task id that exists already is left untouched.
-- ARGV[7] created_by   ARGV[8..] groups of 6: id, type, description, priority, context JSON, max_attempts
-- Returns one flag per task: 1 added, 0 already existed.
local added = {}
for i = 8, #ARGV, 6 do
    local id, task_type, priority = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 3])
    local tkey = task_key(id)
    if redis.call('EXISTS', tkey) == 1 then
        added[#added + 1] = 0
    else
        local seq = redis.call('INCR', BASE .. 'seq')
        local score = fmt(-priority * 1099511627776 + seq)
        redis.call('HSET', tkey, 'task_id', id, 'task_type', task_type, 'description', ARGV[i + 2],
            'priority', ARGV[i + 3], 'context', ARGV[i + 4], 'max_attempts', ARGV[i + 5],
            'status', 'pending', 'attempts', '0', 'created_at', NOW_S, 'created_by', ARGV[7], 'score', score,
            'log_n', '1', 'log:1', log_entry('added', ARGV[7]))
        enqueue(id, task_type, score)
        emit('task.added', 'task', id, 'agent', ARGV[7], 'task_type', task_type)
        added[#added + 1] = 1
    end
end
return added
