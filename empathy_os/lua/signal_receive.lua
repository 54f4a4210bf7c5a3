-- Return the signals a reader has not received yet (under this type filter) and move its cursors.
-- Each (stream, type filter) pair has its own cursor, so filtering by one type never swallows
-- signals of another type.
-- KEYS[2] the reader's inbox   KEYS[3] the team's broadcast stream   KEYS[4] the reader's cursors hash
-- ARGV[4] signal type or '' for all   ARGV[5] max signals returned   ARGV[6] max entries examined per stream
-- Returns {inbox cursor, broadcast cursor, id1, fields1, id2, fields2, ...} oldest first per stream.
local want, limit, scan = ARGV[4], tonumber(ARGV[5]), ARGV[6]
local out = {'', ''}
local found = 0
for s = 1, 2 do
    local stream = KEYS[s + 1]
    local field = (s == 1 and 'inbox|' or 'team|') .. want
    local cursor = redis.call('HGET', KEYS[4], field) or '0-0'
    local last = cursor
    if found < limit then
        local entries = redis.call('XRANGE', stream, '(' .. cursor, '+', 'COUNT', scan)
        for _, e in ipairs(entries) do
            local fields = e[2]
            local match = want == ''
            if not match then
                for i = 1, #fields, 2 do
                    if fields[i] == 'signal_type' then match = fields[i + 1] == want break end
                end
            end
            if match then
                if found >= limit then break end
                found = found + 1
                out[#out + 1] = e[1]
                out[#out + 1] = fields
            end
            last = e[1]
        end
    end
    if last ~= cursor then redis.call('HSET', KEYS[4], field, last) end
    out[s] = last
end
return out
