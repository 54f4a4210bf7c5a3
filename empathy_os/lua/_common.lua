-- Prepended to every script by scripts.py.
-- Conventions shared by all scripts:
--   KEYS[1]  the team's events stream
--   ARGV[1]  team id
--   ARGV[2]  events stream MAXLEN (approximate)
--   ARGV[3]  the team's key base "P:{team:T}:" for keys derived in the script (same hash tag)
-- Script-specific KEYS start at KEYS[2], ARGV at ARGV[4].
local EVENTS, TEAM, EVENTS_MAXLEN, BASE = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local clock = redis.call('TIME')
local NOW = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local NOW_S = string.format('%d', NOW)

local function fmt(n) return string.format("%d", n) end
local unpack = unpack or table.unpack

-- Append a domain event: kind, team, ts and the given field/value pairs.
local function emit(kind, ...)
    redis.call('XADD', EVENTS, 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'kind', kind, 'team', TEAM, 'ts', NOW_S, ...)
end

local function fail(code, message)
    return redis.error_reply(code .. ' ' .. message)
end
