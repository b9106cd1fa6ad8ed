-- Link parents of this queue to their proxies in another queue (flows across queues): an
-- unfinished parent gets the entry "\31<child queue>" in its children list (once), so that
-- its outcome is pushed to `outflow` and relayed to the proxy (flows.lua, flow_relay.lua).
-- Runs before the child's queue writes the proxies and the children (redis_flows.py).
-- @idempotent
-- KEYS[1] state
-- KEYS[2] results
-- KEYS[3] errors
-- KEYS[4] children
-- KEYS[5] removed   completed jobs removed by retention (lib/maintain.lua)
-- ARGV[1] the child queue, ARGV[2...] parent ids
-- Returns, per parent: {status ('missing' when unknown, 'pending' when unfinished), result,
--   error} ('' for none); links nothing when a parent is missing. A parent completed and
--   removed by retention since (in `removed`) reads as completed, without result.
-- @include "lib/records.lua"

local ref = '\31' .. ARGV[1]
local out = {}
for i = 2, #ARGV do
  local st = decode_state(redis.call('HGET', K.state, ARGV[i]) or '')
  if not st and redis.call('ZSCORE', K.removed, ARGV[i]) then st = {status = 'completed'} end
  if not st then return {'missing', ARGV[i], ''} end
  out[#out + 1] = st
end
local reply = {}
for i = 2, #ARGV do
  local id, st = ARGV[i], out[i - 1]
  if FINISHED[st.status] then
    reply[#reply + 1] = st.status
    reply[#reply + 1] = redis.call('HGET', K.results, id) or ''
    reply[#reply + 1] = redis.call('HGET', K.errors, id) or ''
  else
    local kids = redis.call('HGET', K.children, id)
    local list = kids and cjson.decode(kids) or {}
    local linked = false
    for _, kid in ipairs(list) do
      if kid == ref then linked = true end
    end
    if not linked then
      list[#list + 1] = ref
      redis.call('HSET', K.children, id, cjson.encode(list))
    end
    reply[#reply + 1] = 'pending'
    reply[#reply + 1] = ''
    reply[#reply + 1] = ''
  end
end
return reply
