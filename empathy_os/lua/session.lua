-- Open, join, leave or share in a team session. The session is created if absent (never reset),
-- and every call refreshes the TTL of its three keys.
-- KEYS[2] session hash   KEYS[3] participants set   KEYS[4] context hash   KEYS[5] sessions index zset
-- ARGV[4] session id   ARGV[5] ttl seconds   ARGV[6] caller   ARGV[7] purpose (used on creation)
-- ARGV[8] op: 'open' | 'join' | 'leave' | 'share'   ARGV[9] agent (join/leave) or context key (share)
-- ARGV[10] JSON value (share)
-- Returns 1 if this call created the session, else 0.
local created = 0
if redis.call('HSETNX', KEYS[2], 'created_at', NOW_S) == 1 then
    redis.call('HSET', KEYS[2], 'session_id', ARGV[4], 'purpose', ARGV[7], 'created_by', ARGV[6])
    created = 1
    emit('session.created', 'session', ARGV[4], 'agent', ARGV[6])
end
local op = ARGV[8]
if op == 'join' then
    if redis.call('SADD', KEYS[3], ARGV[9]) == 1 then
        emit('session.joined', 'session', ARGV[4], 'agent', ARGV[9])
    end
elseif op == 'leave' then
    if redis.call('SREM', KEYS[3], ARGV[9]) == 1 then
        emit('session.left', 'session', ARGV[4], 'agent', ARGV[9])
    end
elseif op == 'share' then
    redis.call('HSET', KEYS[4], ARGV[9], ARGV[10])
    emit('session.shared', 'session', ARGV[4], 'agent', ARGV[6], 'key', ARGV[9])
end
redis.call('HSET', KEYS[2], 'last_activity', NOW_S)
for k = 2, 4 do redis.call('EXPIRE', KEYS[k], ARGV[5]) end
redis.call('ZADD', KEYS[5], NOW_S, ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', fmt(NOW - tonumber(ARGV[5]) * 1000))
return created
