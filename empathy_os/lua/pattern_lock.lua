-- Take, renew or release the review lock of a staged pattern: one validator reviews it at a time.
-- KEYS[2] the pattern's lock key   KEYS[3] staged hash   KEYS[4] the pattern's decision key
-- ARGV[4] 'lock' | 'unlock'   ARGV[5] pattern id   ARGV[6] the caller (agent id)   ARGV[7] lock ttl (ms)
-- lock:   returns {1, holder, remaining ms} when the caller now holds the lock (taken, or renewed if it
--         already held it; emits pattern.locked), {0, holder, remaining ms} when another holds it
--         (nothing changes). A pattern no longer staged cannot be locked (ALREADY_DONE / NOT_FOUND).
-- unlock: returns 1 when the caller's lock was released (emits pattern.unlocked); 0 when the caller
--         did not hold it (nothing changes: only the holder releases; an expired lock is gone anyway).
local holder = redis.call('GET', KEYS[2])
if ARGV[4] == 'unlock' then
    if holder ~= ARGV[6] then return 0 end
    redis.call('DEL', KEYS[2])
    emit('pattern.unlocked', 'pattern', ARGV[5], 'agent', ARGV[6])
    return 1
end
if holder and holder ~= ARGV[6] then
    return {0, holder, redis.call('PTTL', KEYS[2])}
end
if redis.call('HEXISTS', KEYS[3], ARGV[5]) == 0 then return not_staged(ARGV[5], KEYS[4]) end
redis.call('SET', KEYS[2], ARGV[6], 'PX', ARGV[7])
emit('pattern.locked', 'pattern', ARGV[5], 'agent', ARGV[6])
return {1, ARGV[6], tonumber(ARGV[7])}
