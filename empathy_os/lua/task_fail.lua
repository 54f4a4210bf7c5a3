-- The holder gives up on a task: failed with a reason, or back to pending when retry is asked
-- and attempts remain.
-- ARGV[7] task id   ARGV[8] agent id or ''   ARGV[9] lease token or ''   ARGV[10] reason
-- ARGV[11] '1' to retry while attempts remain, else ''
-- Returns the new status: 'pending' or 'failed'.
local id = ARGV[7]
local t, err = held_task(id, ARGV[8], ARGV[9])
if not t then return err end
return release(id, t, ARGV[10], ARGV[11] == '1')
