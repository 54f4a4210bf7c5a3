-- Prepended to every script by scripts.py.
-- Conventions shared by all scripts:
--   KEYS[1]  the team's events stream
--   ARGV[1]  team id
--   ARGV[2]  events stream limits "<MAXLEN> <retention seconds>" (both approximate; a bare MAXLEN
--            means no age limit)
--   ARGV[3]  the team's key base "P:{team:T}:" for keys derived in the script (same hash tag)
-- Script-specific KEYS start at KEYS[2], ARGV at ARGV[4].
local EVENTS, TEAM, BASE = KEYS[1], ARGV[1], ARGV[3]
local EVENTS_MAXLEN, EVENTS_RETAIN_S = string.match(ARGV[2], '^(%d+) ?(%d*)$')
local clock = redis.call('TIME')
local NOW = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local NOW_S = string.format('%d', NOW)

local function fmt(n) return string.format("%d", n) end
local unpack = unpack or table.unpack

-- Trim a stream's entries older than `seconds` (approximately: only whole stream nodes go, so the
-- check is O(1) when nothing is due). It costs 0.5-0.8 us of server time (measured in a Lua loop on a
-- 10,000-entry stream), so each script does it once at most: the events stream on the first emit.
local function trim_older(stream, seconds)
    if seconds and seconds ~= '' then
        redis.call('XTRIM', stream, 'MINID', '~', fmt(NOW - tonumber(seconds) * 1000))
    end
end

-- Append a domain event: kind, team, ts and the given field/value pairs. The first event of a
-- script also trims the stream by age.
local function emit(kind, ...)
    redis.call('XADD', EVENTS, 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'kind', kind, 'team', TEAM, 'ts', NOW_S, ...)
    if EVENTS_RETAIN_S then
        trim_older(EVENTS, EVENTS_RETAIN_S)
        EVENTS_RETAIN_S = nil
    end
end

local function fail(code, message)
    return redis.error_reply(code .. ' ' .. message)
end
