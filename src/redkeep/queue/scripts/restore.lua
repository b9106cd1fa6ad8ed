-- Write a job as given (migration); nothing is written when the id exists.
-- An active job is restored with an already expired lease, so a worker's reaper requeues it.
-- @idempotent
-- KEYS[1] state
-- KEYS[2] data
-- KEYS[3] results
-- KEYS[4] errors
-- KEYS[5] meta       seq
-- KEYS[6] waiting
-- KEYS[7] delayed
-- KEYS[8] active
-- KEYS[9] completed
-- KEYS[10] failed
-- KEYS[11] cancelled
-- KEYS[12] marker
-- KEYS[13] requests  request id -> reply (a re-sent call answers the same)
-- KEYS[14] reqtimes
-- KEYS[15] events
-- KEYS[16] throughput
-- KEYS[17] waits
-- KEYS[18] gwait      grouped jobs (lib/groups.lua)
-- KEYS[19] groups
-- KEYS[20] gactive
-- KEYS[21] gsleep
-- ARGV[1] request id  ARGV[2] job id  ARGV[3] state record  ARGV[4] data record
-- ARGV[5] result ("" = none)  ARGV[6] error ("" = none)
-- Returns 1 when written, 0 when the id existed; an error for a record that does not parse.
-- @include "lib/memo.lua"
-- @include "lib/groups.lua"

local rid, id = ARGV[1], ARGV[2]
local seen = memo_get(rid)
if seen then return seen[1] end
if redis.call('HEXISTS', K.state, id) == 1 then return memo_put(rid, {0})[1] end
local st = decode_state(ARGV[3])
if not st or not STATUSES[st.status] then
  return redis.error_reply('ERR restore: invalid state record for job ' .. id)
end
local finished = st.finished
local to = unlisted(st)
if finished == '' then finished = nil end
local score
if to == 'waiting' then
  score = waiting_score(st.priority)
elseif to == 'delayed' then
  score = tonumber(st.run_at) or now
elseif to == 'active' then
  score = now
else
  score = tonumber(st.finished) or now
end
transition(id, st, to, score, finished)
redis.call('HSET', K.data, id, ARGV[4])
if ARGV[5] ~= '' then redis.call('HSET', K.results, id, ARGV[5]) end
if ARGV[6] ~= '' then redis.call('HSET', K.errors, id, ARGV[6]) end
if to == 'waiting' or to == 'delayed' then redis.call('ZADD', K.marker, 0, 'w') end
return memo_put(rid, {1})[1]
