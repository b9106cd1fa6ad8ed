-- Create, change or delete a schedule, if its state is still the one the caller read (a
-- compare-and-set: concurrent updates never overwrite each other).
-- @idempotent
-- KEYS[1] schedules  schedule id -> definition (JSON)
-- KEYS[2] schedstate schedule id -> "version|next_ms|paused|last_job_id"
-- KEYS[3] schedtimes schedule id -> next tick (ms), for schedules that are neither paused
--                    nor ended
-- KEYS[4] marker     wake-up marker: member 's' tells the worker that pops it to run a
--                    scheduling pass now (the next tick may be sooner than its next pass)
-- ARGV[1] schedule id  ARGV[2] the state read ("" = the schedule must not exist)
-- ARGV[3] new definition ("" = keep, "-" = delete the schedule)  ARGV[4] new state
-- ARGV[5] score in schedtimes ("" = none)
-- Returns 1 when written, 0 when the state changed since it was read (nothing written).
local id = ARGV[1]
if (redis.call('HGET', K.schedstate, id) or '') ~= ARGV[2] then return 0 end
if ARGV[3] == '-' then
  redis.call('HDEL', K.schedules, id)
  redis.call('HDEL', K.schedstate, id)
  redis.call('ZREM', K.schedtimes, id)
  return 1
end
if ARGV[3] ~= '' then redis.call('HSET', K.schedules, id, ARGV[3]) end
redis.call('HSET', K.schedstate, id, ARGV[4])
if ARGV[5] == '' then
  redis.call('ZREM', K.schedtimes, id)
else
  redis.call('ZADD', K.schedtimes, ARGV[5], id)
  redis.call('ZADD', K.marker, 0, 's')
end
return 1
