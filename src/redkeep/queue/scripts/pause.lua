-- Pause or resume a queue. Paused (meta field `paused` = 1): step.lua claims nothing and
-- enqueue.lua hands nothing off; the jobs handed off to idle workers and not yet popped wait
-- again (their attempt not counted). Resumed: the flag is cleared and idle workers are woken.
-- @idempotent
-- KEYS[1] state
-- KEYS[2] data
-- KEYS[3] meta       paused
-- KEYS[4] waiting
-- KEYS[5] active
-- KEYS[6] marker
-- KEYS[7] handoff
-- KEYS[8] events
-- KEYS[9] throughput
-- KEYS[10] waits
-- ARGV[1] 1 = pause, 0 = resume  ARGV[2] most hand-offs to take back
-- Returns the number of hand-offs taken back.
-- @include "lib/maintain.lua"

if ARGV[1] == '1' then
  redis.call('HSET', K.meta, 'paused', '1')
  begin_batch()
  -- every hand-off, whatever its age (a ttl reaching into the future)
  return reap_handoffs(-86400000, tonumber(ARGV[2]))
end
redis.call('HDEL', K.meta, 'paused')
redis.call('ZADD', K.marker, 0, 'w')
return 0
