-- Put a decided pattern back into staging (compensation when the durable write of a decision failed).
-- KEYS[2] staged hash   KEYS[3] staged order zset   KEYS[4] the pattern's decision key
-- ARGV[4] pattern id   ARGV[5] pattern JSON   ARGV[6] staged time (ms)
redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[4])
redis.call('DEL', KEYS[4])
emit('pattern.staged', 'pattern', ARGV[4], 'agent', cjson.decode(ARGV[5]).agent_id)
return 1
