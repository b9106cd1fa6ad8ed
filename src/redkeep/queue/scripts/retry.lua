-- Move a failed job back to waiting with its attempts reset.
-- @idempotent
-- KEYS[1] state
-- KEYS[2] meta       seq
-- KEYS[3] waiting
-- KEYS[4] failed
-- KEYS[5] marker
-- KEYS[6] requests   request id -> reply (a re-sent call answers the same)
-- KEYS[7] reqtimes
-- KEYS[8] events
-- KEYS[9] throughput
-- KEYS[10] waits
-- KEYS[11] gwait      grouped jobs (lib/groups.lua)
-- KEYS[12] groups
-- KEYS[13] gactive
-- KEYS[14] gsleep
-- ARGV[1] request id  ARGV[2] job id
-- Returns 1 when moved, 0 when the job is not failed.
-- @include "lib/memo.lua"
-- @include "lib/groups.lua"

local rid, id = ARGV[1], ARGV[2]
local seen = memo_get(rid)
if seen then return seen[1] end
local st = decode_state(redis.call('HGET', K.state, id) or '')
if not st or st.status ~= 'failed' then return memo_put(rid, {0})[1] end
st.attempts = '0'
transition(id, st, 'waiting', waiting_score(st.priority))
redis.call('ZADD', K.marker, 0, 'w')
return memo_put(rid, {1})[1]
