-- Set or clear a limit of the queue (a field of `meta`): `rate` ("<max jobs>|<window ms>",
-- lib/rate.lua). Setting one takes back the jobs handed off to idle workers and not yet popped
-- (they wait again, attempt not counted: from now on every start goes through the limit);
-- idle workers are woken either way, so a raised or cleared limit takes effect at once.
-- Clearing the rate limit also drops its window log.
-- @idempotent
-- KEYS[1] state
-- KEYS[2] data
-- KEYS[3] meta       rate
-- KEYS[4] waiting
-- KEYS[5] active
-- KEYS[6] marker
-- KEYS[7] handoff
-- KEYS[8] events
-- KEYS[9] throughput
-- KEYS[10] waits
-- KEYS[11] ratelog
-- ARGV[1] field (rate)  ARGV[2] value ('' = clear)  ARGV[3] most hand-offs to take back
-- Returns the number of hand-offs taken back.
-- @include "lib/maintain.lua"

local field, value = ARGV[1], ARGV[2]
if field ~= 'rate' then return redis.error_reply('unknown limit ' .. field) end
local taken = 0
if value == '' then
  redis.call('HDEL', K.meta, field)
  redis.call('DEL', K.ratelog)
else
  redis.call('HSET', K.meta, field, value)
  begin_batch()
  taken = reap_handoffs(-86400000, tonumber(ARGV[3]))
end
redis.call('ZADD', K.marker, 0, 'w')
return taken
