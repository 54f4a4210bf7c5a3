-- Agent heartbeat: mark the agent alive and renew every lease it holds.
-- KEYS[2] agents:seen zset   KEYS[3] the agent's leases set   KEYS[4] tasks:leased zset
-- ARGV[4] agent id   ARGV[5] lease length (ms)
-- Returns the number of leases renewed. Leases that already expired are not renewed (fencing).
redis.call('ZADD', KEYS[2], NOW_S, ARGV[4])
local deadline = fmt(NOW + tonumber(ARGV[5]))
local renewed = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
    local tkey = BASE .. 'task:' .. id
    local t = redis.call('HMGET', tkey, 'holder', 'lease_deadline', 'status')
    if t[1] == ARGV[4] and t[3] == 'in_progress' and tonumber(t[2]) >= NOW then
        redis.call('HSET', tkey, 'lease_deadline', deadline)
        redis.call('ZADD', KEYS[4], deadline, id)
        renewed = renewed + 1
    elseif t[1] ~= ARGV[4] or t[3] ~= 'in_progress' then
        redis.call('SREM', KEYS[3], id)
    end
end
emit('agent.heartbeat', 'agent', ARGV[4], 'leases', renewed)
return renewed
