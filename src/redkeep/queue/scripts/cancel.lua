-- Cancel a blocked, waiting, delayed or active job (an active one's worker sees it at lease
-- renewal; a job handed off and not yet popped is taken back from the hand-off set). Its
-- children in flows follow their on_parent_failure (lib/flows.lua).
-- @idempotent
-- KEYS[1] state
-- KEYS[2] data
-- KEYS[3] meta
-- KEYS[4] waiting
-- KEYS[5] delayed
-- KEYS[6] active
-- KEYS[7] cancelled
-- KEYS[8] handoff
-- KEYS[9] requests   request id -> reply (a re-sent call answers the same)
-- KEYS[10] reqtimes
-- KEYS[11] events
-- KEYS[12] throughput
-- KEYS[13] waits
-- KEYS[14] gwait      grouped jobs (lib/groups.lua)
-- KEYS[15] groups
-- KEYS[16] gactive
-- KEYS[17] gsleep
-- KEYS[18] blocked
-- KEYS[19] children
-- KEYS[20] deps
-- KEYS[21] errors
-- KEYS[22] failed
-- KEYS[23] marker
-- KEYS[24] results
-- KEYS[25] outflow
-- ARGV[1] request id  ARGV[2] job id
-- Returns the previous status, or false when the job is unknown or already finished.
-- @include "lib/handoff.lua"
-- @include "lib/memo.lua"
-- @include "lib/groups.lua"
-- @include "lib/flows.lua"

local rid, id = ARGV[1], ARGV[2]
local seen = memo_get(rid)
if seen then return seen[1] end
local st = decode_state(redis.call('HGET', K.state, id) or '')
local prev = false
if st and (st.status == 'waiting' or st.status == 'delayed' or st.status == 'active'
    or st.status == 'blocked') then
  prev = st.status
  if prev == 'active' and st.worker == '' then
    local data = redis.call('HGET', K.data, id)
    if data then redis.call('ZREM', K.handoff, handoff_member(st, data)) end
  end
  transition(id, st, 'cancelled', now_s)
  if settle_flows() then redis.call('ZADD', K.marker, 0, 'w') end
end
return memo_put(rid, {prev})[1]
