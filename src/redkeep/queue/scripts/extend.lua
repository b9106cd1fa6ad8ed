-- Renew the leases of jobs a worker holds. A job whose token is stale or that is no longer
-- active (cancelled, reclaimed after its lease expired) is reported as lost. A job handed off
-- to this worker gets its worker id here. Running it twice renews twice: nothing else.
-- @idempotent
-- KEYS[1] state
-- KEYS[2] active
-- ARGV[1] worker id  ARGV[2] lease ms  then pairs: job id, token
-- Returns the list of lost ids.
-- @include "lib/records.lua"

local me = ARGV[1]
local expiry = now + tonumber(ARGV[2])
local ids = {}
for i = 3, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
local lost = {}
if #ids == 0 then return lost end
local recs = redis.call('HMGET', K.state, unpack(ids))
begin_batch()
for k, id in ipairs(ids) do
  local st = recs[k] and decode_state(recs[k])
  if st and st.status == 'active' and st.token == ARGV[2 * k + 2] then
    set_score('active', expiry, id)
    if st.worker ~= me then
      st.worker = me
      put_state(id, st)
    end
  else
    lost[#lost + 1] = id
  end
end
flush()
return lost
