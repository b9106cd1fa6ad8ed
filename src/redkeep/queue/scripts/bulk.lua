-- One batch of a bulk operation (redkeep.queue.bulk): retry failed jobs or cancel waiting and
-- delayed ones, looking at up to `scan` jobs of one index from `offset`.
-- @idempotent
-- KEYS[1] state
-- KEYS[2] data
-- KEYS[3] meta       seq
-- KEYS[4] waiting
-- KEYS[5] delayed
-- KEYS[6] failed
-- KEYS[7] cancelled
-- KEYS[8] marker
-- KEYS[9] requests   request id -> reply (a re-sent call answers the same)
-- KEYS[10] reqtimes
-- KEYS[11] events
-- KEYS[12] throughput
-- KEYS[13] waits
-- KEYS[14] gwait      grouped jobs (lib/groups.lua)
-- KEYS[15] groups
-- KEYS[16] gactive
-- KEYS[17] gsleep
-- KEYS[18] blocked   children of cancelled jobs follow their on_parent_failure (lib/flows.lua)
-- KEYS[19] children
-- KEYS[20] deps
-- KEYS[21] errors
-- KEYS[22] results
-- KEYS[23] outflow
-- ARGV[1] request id  ARGV[2] op (retry | cancel)  ARGV[3] status (the index: failed for
-- retry, waiting or delayed for cancel)  ARGV[4] handler name ('' = all)  ARGV[5] offset
-- ARGV[6] scan (<= 1000)  ARGV[7] room (most jobs to change)
-- Returns {changed, looked at}.
-- @include "lib/memo.lua"
-- @include "lib/groups.lua"
-- @include "lib/flows.lua"

local rid, op, status, name = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local seen = memo_get(rid)
if seen then return seen end
local to = (op == 'retry' and status == 'failed' and 'waiting')
  or (op == 'cancel' and (status == 'waiting' or status == 'delayed') and 'cancelled')
if not to then return redis.error_reply('ERR bulk: unknown op/status') end
local offset, scan, room = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local ids = redis.call('ZRANGE', K[status], offset, offset + scan - 1)
if #ids == 0 then return memo_put(rid, {0, 0}) end
local states = redis.call('HMGET', K.state, unpack(ids))
local datas = nil
if name ~= '' then datas = redis.call('HMGET', K.data, unpack(ids)) end
begin_batch()
local changed, looked = 0, 0
for i, id in ipairs(ids) do
  if changed >= room then break end
  looked = i
  local st = decode_state(states[i] or '')
  local match = st and st.status == status
  if match and datas then
    local head = string.match(datas[i] or '', '^[^\n]*')
    local ok, fields = pcall(cjson.decode, head)
    match = ok and type(fields) == 'table' and fields[2] == name
  end
  if match then
    if to == 'waiting' then
      st.attempts = '0'
      transition(id, st, 'waiting', waiting_score(st.priority, #ids - i + 1))
    else
      transition(id, st, 'cancelled', now_s)
    end
    changed = changed + 1
  end
end
flush()
local woke = settle_flows()
flush()
if (to == 'waiting' and changed > 0) or woke then redis.call('ZADD', K.marker, 0, 'w') end
return memo_put(rid, {changed, looked})
