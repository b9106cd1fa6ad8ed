-- Depth of one queue for metrics: jobs per status and the age of the oldest waiting job.
-- KEYS[1] blocked
-- KEYS[2] waiting
-- KEYS[3] delayed
-- KEYS[4] active
-- KEYS[5] completed
-- KEYS[6] failed
-- KEYS[7] cancelled
-- KEYS[8] state      job id -> state record (for the head job's creation time)
-- Returns {blocked, waiting, delayed, active, completed, failed, cancelled, head_age_ms}
-- (the statuses in redkeep.queue.job.STATUSES order); head_age_ms is
-- the age (server TIME minus the job's creation time) of the job at the head of the waiting
-- zset, i.e. the oldest job of the highest waiting priority, or -1 when nothing waits.
-- @include "../queue/scripts/lib/records.lua"

local out = {}
for i = 1, 7 do
  out[i] = redis.call('ZCARD', KEYS[i])
end
local age = -1
local head = redis.call('ZRANGE', K.waiting, 0, 0)
if head[1] then
  local st = decode_state(redis.call('HGET', K.state, head[1]) or '')
  local created = st and tonumber(st.created)
  if created then age = math.max(0, now - created) end
end
out[8] = age
return out
