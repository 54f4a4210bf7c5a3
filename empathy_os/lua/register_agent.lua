-- Register (or re-register) an agent with its capabilities; counts as a heartbeat.
-- KEYS[2] agents hash   KEYS[3] agents:seen zset
-- ARGV[4] agent id      ARGV[5] JSON record {capabilities, registered_at}
redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
redis.call('ZADD', KEYS[3], NOW_S, ARGV[4])
emit('agent.registered', 'agent', ARGV[4])
return NOW
