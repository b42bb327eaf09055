"""The Lua script that writes one outcome exactly once.

One atomic step on the server: it removes the call's ``calls:live`` field (the
call has an outcome now; ``server.store.lost``); then, if the marker
``outcome:{call_sid}:{stream_sid}`` exists, the outcome was written before and
the script only returns the earlier entry id;
otherwise it XADDs the entry to ``calls:outcomes``, sets the marker (value: the
entry id, with a TTL), updates ``campaign:{id}:stats`` and trims the stream.

Trimming never drops unread entries silently. With no consumer group the
stream is capped at ~MAXLEN (plain ``XREAD`` readers, like ``voicebot outcomes
tail``, must keep up — Redis cannot know what they read). With consumer groups,
only entries every group has both delivered and acknowledged are trimmed: the
script removes at most ``len - cap`` of the oldest entries that lie below every
group's first pending entry (or at/below its last-delivered id when none is
pending). When a lagging group holds the stream above its cap the script
reports ``over_cap`` and the Python side logs a warning and counts it
(``StoreStatistics.outcomes_over_cap``): memory grows, data is kept.

KEYS: marker, stream, campaign stats (ignored unless ARGV[3] == "1"), calls:live.
ARGV: marker_ttl_s, cap, has_campaign, stage, duration_ms, cost_micro_usd,
dnc (0/1), scan_limit, the calls:live field, then the entry's field/value pairs.
Returns {entry_id, written (0/1), over_cap (0/1)}.
"""

from __future__ import annotations

FIXED_ARGS = 9

WRITE_OUTCOME_LUA = """
redis.call('HDEL', KEYS[4], ARGV[9])
local existing = redis.call('GET', KEYS[1])
if existing then return {existing, 0, 0} end

local fields = {}
for i = 10, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('SET', KEYS[1], id, 'EX', ARGV[1])

if ARGV[3] == '1' then
  redis.call('HINCRBY', KEYS[3], 'calls', 1)
  redis.call('HINCRBY', KEYS[3], 'outcome:' .. ARGV[4], 1)
  redis.call('HINCRBY', KEYS[3], 'duration_ms', ARGV[5])
  redis.call('HINCRBY', KEYS[3], 'cost_micro_usd', ARGV[6])
  redis.call('HINCRBY', KEYS[3], 'dnc', ARGV[7])
end

local cap = tonumber(ARGV[2])
local len = redis.call('XLEN', KEYS[2])
if len <= cap then return {id, 1, 0} end

local groups = redis.call('XINFO', 'GROUPS', KEYS[2])
if #groups == 0 then
  redis.call('XTRIM', KEYS[2], 'MAXLEN', '~', cap)
  return {id, 1, 0}
end

-- The lowest bound over all groups of what may go: {ms, seq, exclusive, id}.
local function parse(s)
  local ms, seq = string.match(s, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function lower(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  if a[2] ~= b[2] then return a[2] < b[2] end
  return a[3] and not b[3]
end
local bound = nil
for _, g in ipairs(groups) do
  local info = {}
  for j = 1, #g, 2 do info[g[j]] = g[j + 1] end
  local b
  if tonumber(info['pending']) > 0 then
    local p = redis.call('XPENDING', KEYS[2], info['name'])
    local ms, seq = parse(p[2])
    b = {ms, seq, true, p[2]}
  else
    local ms, seq = parse(info['last-delivered-id'])
    b = {ms, seq, false, info['last-delivered-id']}
  end
  if bound == nil or lower(b, bound) then bound = b end
end

local excess = len - cap
local want = math.min(excess, tonumber(ARGV[8]))
local upper = bound[4]
if bound[3] then upper = '(' .. upper end
local removable = redis.call('XRANGE', KEYS[2], '-', upper, 'COUNT', want)
if #removable > 0 then
  redis.call('XTRIM', KEYS[2], 'MAXLEN', len - #removable)
end
local over = 0
if #removable < excess then over = 1 end
return {id, 1, over}
"""
