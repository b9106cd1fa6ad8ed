-- Apply the outcomes of parents of another queue to their proxies here (flows across queues):
-- a blocked proxy takes the parent's result or error and status, and its children follow
-- (lib/flows.lua). A proxy not written yet (its flow is being created) is written finished; a
-- finished one is left alone, so relaying an entry twice changes nothing.
-- @idempotent
-- KEYS[1] state
-- KEYS[2] data
-- KEYS[3] results
-- KEYS[4] errors
-- KEYS[5] meta       seq
-- KEYS[6] waiting
-- KEYS[7] delayed
-- KEYS[8] blocked
-- KEYS[9] completed
-- KEYS[10] failed
-- KEYS[11] cancelled
-- KEYS[12] marker
-- KEYS[13] children
-- KEYS[14] deps
-- KEYS[15] events
-- KEYS[16] throughput
-- KEYS[17] waits
-- KEYS[18] outflow
-- ARGV[1] the parents' queue, then per parent: id, status (completed, failed or cancelled),
--   result, error ('' for none)
-- Returns the number of proxies changed.
-- @include "lib/flows.lua"

if not flow_watch then flow_watch = {} end -- a proxy is a parent here: settle its children
local changed = 0
for i = 2, #ARGV, 4 do
  local id, status, res, err = ARGV[1] .. '/' .. ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local st = decode_state(redis.call('HGET', K.state, id) or '')
  if FINISHED[status] and (not st or st.status == 'blocked') then
    if not st then
      redis.call('HSET', K.data, id, cjson.encode({id, 'redkeep.parent', cjson.null}) .. '\nnull')
      st = new_state('0', '1', now_s)
    end
    if res ~= '' then redis.call('HSET', K.results, id, res) end
    if err ~= '' then redis.call('HSET', K.errors, id, err) end
    transition(id, st, status, now_s)
    changed = changed + 1
  end
end
if settle_flows() then redis.call('ZADD', K.marker, 0, 'w') end
return changed
