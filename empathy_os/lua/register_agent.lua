-- Register (or re-register) an agent with its capabilities; counts as a heartbeat.
-- KEYS[2] agents hash   KEYS[3] agents:seen zset
-- ARGV[7] agent id      ARGV[8] JSON record {capabilities}
-- A registration starts a new incarnation of the agent id. Leases the id still holds belong to a
-- process that is gone (an agent registers when it starts), so they go back to the queue now (an
-- attempt used, as when a lease expires). Kept, the new process's heartbeats would renew them for
-- ever, and those tasks would never finish. Returns the number of leases released.
local agent = ARGV[7]
local released = 0
for _, id in ipairs(redis.call('SMEMBERS', leases_key(agent))) do
    local t = load_task(id)
    if t and t.status == 'in_progress' and t.holder == agent then
        release(id, t, 'holder ' .. agent .. ' registered again (restarted)', true)
        released = released + 1
    end
end
redis.call('DEL', leases_key(agent))
redis.call('HSET', KEYS[2], agent, ARGV[8])
redis.call('ZADD', KEYS[3], NOW_S, agent)
emit('agent.registered', 'agent', agent, 'released', released)
return released
