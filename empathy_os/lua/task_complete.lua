-- Complete tasks: only the current holder, only while the lease holds, exactly once.
-- ARGV[7] agent id or '' (steward: whoever holds it)
-- ARGV[8] '' for one task, then ARGV[9] task id, ARGV[10] lease token or '', ARGV[11] result JSON:
--         returns the holder credited with the completion (or the error).
-- ARGV[8] '*' for a batch, then groups of 3 from ARGV[9]: task id, lease token or '', result JSON:
--         returns one reply per task: the holder credited, or {err = "CODE message"} as a status
--         string "!CODE message" (each task is checked and completed on its own).
local agent = ARGV[7]
if ARGV[8] == '' then return complete_one(ARGV[9], agent, ARGV[10], ARGV[11]) end
local out = {}
for i = 9, #ARGV, 3 do
    local reply = complete_one(ARGV[i], agent, ARGV[i + 1], ARGV[i + 2])
    if type(reply) == 'table' then reply = '!' .. reply.err end
    out[#out + 1] = reply
end
return out
