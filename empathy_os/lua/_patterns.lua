-- Prepended (after _common.lua) to the pattern scripts (pattern_*.lua).

-- The error for a pattern that is not (or no longer) staged: decided already (by whom, from its
-- decision key), or never staged in this team.
local function not_staged(pattern_id, decision_key)
    local prior = redis.call('GET', decision_key)
    if prior then
        local d = cjson.decode(prior)
        return fail('ALREADY_DONE', 'pattern ' .. pattern_id .. ' was already ' .. d.decision .. ' by ' .. d.decided_by)
    end
    return fail('NOT_FOUND', 'no staged pattern ' .. pattern_id .. ' in team ' .. TEAM)
end
