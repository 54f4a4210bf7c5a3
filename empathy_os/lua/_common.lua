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
local TRIM_TICK = tonumber(clock[2]) % 16 == 0  -- about one script in 16: see emit()

local function fmt(n) return string.format("%d", n) end
local unpack = unpack or table.unpack

-- Trim a stream's entries older than `seconds` (approximately: only whole stream nodes go, so the
-- check is O(1) when nothing is due). It costs 0.5-0.8 us of server time (measured in a Lua loop on a
-- 10,000-entry stream), so scripts do it only now and then (see emit()).
local function trim_older(stream, seconds)
    if seconds and seconds ~= '' then
        redis.call('XTRIM', stream, 'MINID', '~', fmt(NOW - tonumber(seconds) * 1000))
    end
end

-- Append a domain event: kind, team, ts and the given field/value pairs. The stream's count cap
-- (MAXLEN ~) is applied by every XADD; its age limit by an XTRIM MINID ~ in about one script in 16
-- (those whose TIME microseconds are a multiple of 16, so no counter is read or written): entries
-- older than the retention stay until such a script emits, on average 16 emitting scripts later.
local function emit(kind, ...)
    redis.call('XADD', EVENTS, 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'kind', kind, 'team', TEAM, 'ts', NOW_S, ...)
    if EVENTS_RETAIN_S ~= '' and TRIM_TICK then
        trim_older(EVENTS, EVENTS_RETAIN_S)
        EVENTS_RETAIN_S = ''
    end
end

local function fail(code, message)
    return redis.error_reply(code .. ' ' .. message)
end
