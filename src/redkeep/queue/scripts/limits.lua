-- Set or clear a limit of the queue (a field of `meta`): `rate` ("<max jobs>|<window ms>",
-- lib/rate.lua) or `glimit` ("<concurrency>|<max jobs>|<window ms>", lib/groups.lua). Setting
-- one takes back the jobs handed off to idle workers and not yet popped (they wait again,
-- attempt not counted: from now on every start goes through the limit); idle workers are woken
-- either way, so a raised or cleared limit takes effect at once. Clearing the rate limit drops
-- its window log. A changed group limit puts back in the rotation the groups it held out (those
-- with active jobs, and those asleep for their rate window).
-- @idempotent
-- KEYS[1] state
-- KEYS[2] data
-- KEYS[3] meta       rate, glimit
-- KEYS[4] waiting
-- KEYS[5] active
-- KEYS[6] marker
-- KEYS[7] handoff
-- KEYS[8] events
-- KEYS[9] throughput
-- KEYS[10] waits
-- KEYS[11] ratelog
-- KEYS[12] gwait      grouped jobs (lib/groups.lua)
-- KEYS[13] groups
-- KEYS[14] gactive
-- KEYS[15] gsleep
-- KEYS[16] glog
-- ARGV[1] field (rate | glimit)  ARGV[2] value ('' = clear)  ARGV[3] most hand-offs to take back
-- Returns the number of hand-offs taken back.
-- @include "lib/maintain.lua"
-- @include "lib/groups.lua"

local field, value = ARGV[1], ARGV[2]
if field ~= 'rate' and field ~= 'glimit' then
  return redis.error_reply('ERR limits: unknown limit ' .. field)
end
local taken = 0
if value == '' then
  redis.call('HDEL', K.meta, field)
  if field == 'rate' then redis.call('DEL', K.ratelog) else redis.call('DEL', K.glog) end
else
  redis.call('HSET', K.meta, field, value)
  begin_batch()
  taken = reap_handoffs(-86400000, tonumber(ARGV[3]))
end
if field == 'glimit' then
  for _, g in ipairs(redis.call('ZRANGE', K.gsleep, 0, -1)) do
    redis.call('ZREM', K.gsleep, g)
    group_ready(g)
  end
  for _, g in ipairs(redis.call('HKEYS', K.gactive)) do group_ready(g) end
end
redis.call('ZADD', K.marker, 0, 'w')
return taken
