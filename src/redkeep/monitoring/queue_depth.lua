-- Depth of one queue for metrics: jobs per status and the age of the oldest waiting job.
-- KEYS[1] waiting  KEYS[2] delayed  KEYS[3] active  KEYS[4] completed  KEYS[5] failed
-- KEYS[6] cancelled (all share the queue's hash tag)
-- ARGV[1] job hash key prefix (same tag)
-- Returns {waiting, delayed, active, completed, failed, cancelled, head_age_ms}; head_age_ms is
-- the age (server TIME minus the job's 'created' field) of the job at the head of the waiting
-- zset, i.e. the oldest job of the highest waiting priority, or -1 when nothing waits.
local out = {}
for i = 1, 6 do
  out[i] = redis.call('ZCARD', KEYS[i])
end
local age = -1
local head = redis.call('ZRANGE', KEYS[1], 0, 0)
if head[1] then
  local created = tonumber(redis.call('HGET', ARGV[1] .. head[1], 'created'))
  if created then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    age = math.max(0, now - created)
  end
end
out[7] = age
return out
