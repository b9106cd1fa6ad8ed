-- Fire claimed schedules: for each one whose state is still the one its claim read, enqueue
-- the jobs of its ticks (ids derived from the schedule id and the tick: a job that exists is
-- not added again) and store its new state and next tick, all in this one script. A schedule
-- changed since the claim (updated, paused, deleted, fired by another worker after the claim
-- lease ended) is left alone: no tick is ever enqueued twice.
-- @idempotent
-- KEYS[1] state
-- KEYS[2] data
-- KEYS[3] meta
-- KEYS[4] waiting
-- KEYS[5] delayed
-- KEYS[6] marker
-- KEYS[7] events
-- KEYS[8] throughput
-- KEYS[9] waits
-- KEYS[10] schedstate
-- KEYS[11] schedtimes
-- ARGV[1] number of schedules, then per schedule: id, state read by the claim, new state,
--   next tick ms ("" = none: paused or ended), number of jobs k, then k times: job id,
--   "max_attempts|priority|run_at_ms" (run_at 0 = now), data record
-- Returns the ids of the schedules fired.
-- @include "lib/state.lua"

local fired = {}
local queued = false
local a = 2
for _ = 1, tonumber(ARGV[1]) do
  local id, expected, new, score, k = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3],
    tonumber(ARGV[a + 4])
  local ok = redis.call('HGET', K.schedstate, id) == expected
  a = a + 5
  for _ = 1, k do
    if ok and redis.call('HSETNX', K.data, ARGV[a], ARGV[a + 2]) == 1 then
      local max_attempts, priority, run_at = string.match(ARGV[a + 1], '^(%d+)|(-?%d+)|(%d+)$')
      if run_at ~= '0' and tonumber(run_at) > now then
        transition(ARGV[a], new_state(priority, max_attempts, run_at), 'delayed', run_at)
      else
        transition(ARGV[a], new_state(priority, max_attempts, now_s), 'waiting',
          waiting_score(priority))
      end
      queued = true
    end
    a = a + 3
  end
  if ok then
    redis.call('HSET', K.schedstate, id, new)
    if score == '' then
      redis.call('ZREM', K.schedtimes, id)
    else
      redis.call('ZADD', K.schedtimes, score, id)
    end
    fired[#fired + 1] = id
  end
end
if queued then redis.call('ZADD', K.marker, 0, 'w') end
return fired
