-- Store the progress a running attempt reports, fenced by its token, and emit its event.
-- The same value stored again changes nothing (no second event), so a re-send acts once.
-- @idempotent
-- KEYS[1] state
-- KEYS[2] meta       events (the stream's bound)
-- KEYS[3] events
-- KEYS[4] progress   job id -> progress JSON
-- ARGV[1] job id  ARGV[2] token of the attempt  ARGV[3] progress JSON
-- Returns 1 when stored (or already stored), 0 when the attempt no longer holds the job.
-- @include "lib/records.lua"

local id, value = ARGV[1], ARGV[3]
local st = decode_state(redis.call('HGET', K.state, id) or '')
if not st or st.status ~= 'active' or st.token ~= ARGV[2] then return 0 end
if redis.call('HGET', K.progress, id) ~= value then
  redis.call('HSET', K.progress, id, value)
  emit(id, 'progress', 'd', value)
end
return 1
