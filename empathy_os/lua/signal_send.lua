-- Append a signal to a stream: an agent's inbox (targeted) or the team's broadcast stream.
-- KEYS[2] the stream   KEYS[3] the team's signal counter (orders signals across streams)
-- ARGV[4] sender   ARGV[5] signal type   ARGV[6] data JSON   ARGV[7] target agent or ''
-- ARGV[8] stream MAXLEN (approximate)   ARGV[9] retention of the stream's entries in seconds (approximate)
-- Every 16th signal of the team (by its counter) also trims the stream it was sent to by age: the
-- events stream is trimmed by age in this same script already, and one trim per write is enough.
-- Returns the signal's stream id.
local seq = redis.call('INCR', KEYS[3])
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], '*', 'sender', ARGV[4],
    'signal_type', ARGV[5], 'data', ARGV[6], 'target', ARGV[7], 'sent_at', NOW_S, 'seq', seq)
if seq % 16 == 0 then trim_older(KEYS[2], ARGV[9]) end
emit('signal.sent', 'signal', id, 'agent', ARGV[4], 'signal_type', ARGV[5], 'target', ARGV[7])
return id
