-- Delete a job that is not active: it leaves its status index and every record of it (state,
-- data, result, error, progress) is deleted, so that nothing of it is left; a `removed` event says
-- so. An active job is refused (its
-- worker holds it: cancel it first). A deleted parent that had not finished counts as cancelled
-- for its blocked children (their on_parent_failure applies, lib/flows.lua).
-- @idempotent
-- KEYS[1] state
-- KEYS[2] data
-- KEYS[3] results
-- KEYS[4] errors
-- KEYS[5] waiting
-- KEYS[6] delayed
-- KEYS[7] completed
-- KEYS[8] failed
-- KEYS[9] cancelled
-- KEYS[10] requests   request id -> reply (a re-sent call answers the same)
-- KEYS[11] reqtimes
-- KEYS[12] meta
-- KEYS[13] events     the job's `removed` event
-- KEYS[14] progress
-- KEYS[15] blocked
-- KEYS[16] deps      a deleted blocked job's parent counter goes too (lib/flows.lua)
-- KEYS[17] children
-- KEYS[18] marker
-- KEYS[19] throughput
-- KEYS[20] waits
-- KEYS[21] outflow
-- ARGV[1] request id  ARGV[2] job id
-- Returns the status the job had ('active' when refused), or false when there is no such job.
-- @include "lib/memo.lua"
-- @include "lib/flows.lua"

local rid, id = ARGV[1], ARGV[2]
local seen = memo_get(rid)
if seen then return seen[1] end
local rec = redis.call('HGET', K.state, id)
if not rec then return memo_put(rid, {false})[1] end
local st = decode_state(rec)
if st and st.status == 'active' then return memo_put(rid, {'active'})[1] end
if st and STATUSES[st.status] then
  unlist(st.status, id)
else -- a record that does not parse: its index is unknown (an active entry is reaped)
  for name in pairs(STATUSES) do
    if name ~= 'active' then unlist(name, id) end
  end
end
delete_records({id}, st and st.status or '')
redis.call('HDEL', K.deps, id)
if flow_watch then
  if not (st and FINISHED[st.status]) then -- it will never complete: as if cancelled
    flow_watch[#flow_watch + 1] = id
    flow_watch[#flow_watch + 1] = 'cancelled'
  end
  if settle_flows() then redis.call('ZADD', K.marker, 0, 'w') end
  redis.call('HDEL', K.children, id)
end
return memo_put(rid, {st and st.status or 'unknown'})[1]
