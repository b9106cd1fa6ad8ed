-- One worker step: record finished attempts (fenced by token), reap expired leases and stale
-- hand-offs (all of them when the step claims nothing and no worker is left idle), promote due
-- delayed jobs, trim finished jobs, then claim up to N jobs (first those handed off and not yet
-- popped, then waiting ones).
-- The step's request id is remembered per worker with its reply: the same request sent again
-- (after a lost reply) applies nothing and returns the same claimed jobs.
-- @idempotent
-- KEYS[1] state
-- KEYS[2] data
-- KEYS[3] results
-- KEYS[4] errors
-- KEYS[5] meta       seq, hlease, paused, rate, glimit, gturn
-- KEYS[6] waiting
-- KEYS[7] delayed
-- KEYS[8] active
-- KEYS[9] completed
-- KEYS[10] failed
-- KEYS[11] cancelled
-- KEYS[12] marker
-- KEYS[13] handoff
-- KEYS[14] idle      worker id -> end of its idle registration (ms)
-- KEYS[15] workers   worker id -> last step (ms)
-- KEYS[16] steps     worker id -> "<request id>\n<memo of the reply>"
-- KEYS[17] events
-- KEYS[18] throughput
-- KEYS[19] waits
-- KEYS[20] progress
-- KEYS[21] ratelog   start times of the rate limit's window (lib/rate.lua)
-- KEYS[22] gwait     grouped waiting jobs by group (lib/groups.lua)
-- KEYS[23] groups
-- KEYS[24] gactive
-- KEYS[25] gsleep
-- KEYS[26] glog
-- KEYS[27] blocked   jobs waiting for parents (lib/flows.lua)
-- KEYS[28] children
-- KEYS[29] deps
-- KEYS[30] outflow
-- KEYS[31] removed   tombstones of completed jobs removed by retention (lib/maintain.lua)
-- ARGV[1] worker id  ARGV[2] request id  ARGV[3] jobs to claim  ARGV[4] lease ms
-- ARGV[5] completed ttl ms  ARGV[6] completed max  ARGV[7] failed ttl ms  ARGV[8] failed max
-- ARGV[9] batch size for reaping/promoting/trimming
-- ARGV[10] ms to stay registered idle when fewer jobs than wanted were claimed (0 = do not)
-- ARGV[11] ms after which a hand-off nobody took waits again
-- ARGV[12...] outcomes, 5 arguments each: id, token, kind (done|retry|fail|release), data
--   (result or failure JSON), retry delay ms
-- Returns {claimed jobs as {id, state, data, error, ...}, ms until the next delayed job is due
--   or a group's rate window has room (when nothing was claimed: or a lease expires or a
--   hand-off goes stale), or -1, leases recovered, rejected ids (stale token),
--   1 if jobs are still waiting (and the queue is not paused or rate limited) else 0, ms until
--   the rate limit lets another job start when it kept waiting jobs from being claimed else -1,
--   1 when `outflow` holds outcomes to relay to other queues (lib/flows.lua) else 0 (absent
--   in a memo's answer)}
-- A paused queue (meta field `paused`) claims nothing and registers no idle worker. A rate
-- limited one (meta field `rate`) claims no more than its window has room for and registers
-- no idle worker (enqueues hand nothing off: every start goes through the limit).
-- @include "lib/claim.lua"
-- @include "lib/rate.lua"
-- @include "lib/groups.lua"
-- @include "lib/flows.lua"

local me, rid = ARGV[1], ARGV[2]
local want, lease = tonumber(ARGV[3]), tonumber(ARGV[4])
local batch = tonumber(ARGV[9])

-- 0. a re-sent request: answer from the memo, apply nothing
local memo = redis.call('HGET', K.steps, me)
if memo and string.sub(memo, 1, #rid + 1) == rid .. '\n' then
  local m = string.sub(memo, #rid + 2)
  if string.sub(m, 1, 1) == '[' then m = cjson.decode(m) else m = {tonumber(m), {}, {}} end
  local ids = {}
  for k = 1, #m[3], 2 do
    local st = decode_state(redis.call('HGET', K.state, m[3][k]) or '')
    if st and st.status == 'active' and tonumber(st.token) == m[3][k + 1] then
      ids[#ids + 1] = m[3][k]
    end
  end
  local more = 0
  if redis.call('ZCARD', K.waiting) > 0 and redis.call('HEXISTS', K.meta, 'paused') == 0 then
    more = 1
  end
  -- written again (unchanged) so that a WAIT after this call covers the first run's writes
  redis.call('HSET', K.steps, me, memo)
  return {job_records(ids), next_due(), m[1], m[2], more, -1}
end
redis.call('ZADD', K.workers, now_s, me)
redis.call('ZREM', K.idle, me)
begin_batch()

-- 1. outcomes
local n_out = (#ARGV - 11) / 5
local rejected = {}
local wake = false
if n_out > 0 then
  local ids = {}
  for i = 1, n_out do ids[i] = ARGV[7 + 5 * i] end
  local recs = redis.call('HMGET', K.state, unpack(ids))
  local seen = {}
  local results, errs = {}, {}
  for i = 1, n_out do
    local b = 7 + 5 * i
    local id, token, kind, data = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
    local st = seen[id]
    if not st then st = recs[i] and decode_state(recs[i]); seen[id] = st end
    if not st or st.status ~= 'active' or st.token ~= token then
      rejected[#rejected + 1] = id
    else
      if st.worker == '' then st.worker = me end
      if kind == 'done' then
        results[#results + 1] = id
        results[#results + 1] = data
        transition(id, st, 'completed', now_s)
      elseif kind == 'release' then
        undo_attempt(st)
        transition(id, st, 'waiting', waiting_score(st.priority))
        wake = true
      else
        errs[#errs + 1] = id
        errs[#errs + 1] = data
        if kind == 'retry' and tonumber(st.attempts) < tonumber(st.max_attempts) then
          local due = now + tonumber(ARGV[b + 4])
          st.run_at = due
          transition(id, st, 'delayed', due)
          wake = true -- an idle worker steps to learn when it is due
        else
          transition(id, st, 'failed', now_s)
        end
      end
    end
  end
  if #results > 0 then call_chunked('HSET', 'results', results) end
  if #errs > 0 then call_chunked('HSET', 'errors', errs) end
  flush()
end

-- 2. upkeep
local recovered = reap_leases(batch)
local handoff_age = handoff_ttl(tonumber(ARGV[11]), want)
if reap_handoffs(handoff_age, batch) + recovered + promote_due(batch) > 0 then
  wake = true
end

-- children of the jobs finished above: released, failed or cancelled (lib/flows.lua)
if settle_flows() then wake = true end
flush()

-- 3. claim (nothing while paused, no more than the rate limit lets start)
local claimed = {}
local got = 0
local flags = redis.call('HMGET', K.meta, 'paused', 'rate')
local paused, rate = flags[1], flags[2]
local room = want
local grouped = redis.call('EXISTS', K.gwait, K.gsleep) > 0
if not paused then
  if rate and want > 0 then room = math.min(want, rate_room(rate)) end
  got = claim_handed(me, room, lease, claimed)
  if grouped then -- half the room to ungrouped jobs, half to groups, the rest to either (an
    -- odd one by the clock's parity: a worker claiming one job at a time starves neither side)
    wake_groups()
    local half = (room - got + now % 2) / 2
    got = got + claim_waiting(me, math.floor(half), lease, claimed, UNGROUPED_MAX)
    got = got + claim_groups(me, room - got, lease, claimed)
    got = got + claim_waiting(me, room - got, lease, claimed, UNGROUPED_MAX)
  else
    got = got + claim_waiting(me, room - got, lease, claimed)
  end
  if rate and got > 0 then rate_record(rate, claimed) end
end
flush()
local more = 0
local throttle = -1
local runnable
if grouped then -- grouped jobs wait in `waiting` too, but only groups in the rotation may start
  runnable = redis.call('ZCOUNT', K.waiting, '-inf', UNGROUPED_MAX) > 0
    or redis.call('EXISTS', K.groups) == 1
else
  runnable = redis.call('ZCARD', K.waiting) > 0
end
if paused then -- no wake-up passed on, no idle registration
elseif runnable then
  if room < want then -- stopped by the rate limit: the worker sleeps until the next slot
    throttle = rate_wait(rate)
  else
    more = 1
    if want > 0 then wake = true end
  end
elseif tonumber(ARGV[10]) > 0 and got < want and not rate then
  redis.call('ZADD', K.idle, now + tonumber(ARGV[10]), me)
  redis.call('HSET', K.meta, 'hlease', lease)
end

-- 4. retention: a busy step trims a little more than it finished (keeps up, stays cheap), an
-- idle one a batch
local n_trim = batch
if n_out > 0 or got > 0 then n_trim = math.min(batch, 2 * n_out + 10) end
local cttl, cmax = tonumber(ARGV[5]), tonumber(ARGV[6])
trim_finished('completed', cttl, cmax, n_trim)
trim_finished('cancelled', cttl, cmax, n_trim)
trim_finished('failed', tonumber(ARGV[7]), tonumber(ARGV[8]), n_trim)
if n_out == 0 and got == 0 then forget_workers() end -- idle steps do it (at least 1/s)

if wake then redis.call('ZADD', K.marker, 0, 'w') end
-- the memo: just the count when nothing was claimed or rejected (no JSON to encode)
if #claimed == 0 and #rejected == 0 then
  memo = recovered
else
  memo = cjson.encode({recovered, rejected, claimed})
end
redis.call('HSET', K.steps, me, rid .. '\n' .. memo)
local ids = {}
for k = 1, #claimed, 2 do ids[#ids + 1] = claimed[k] end
local due = next_due()
if grouped then due = group_due(due) end
if got == 0 then due = upkeep_due(due, tonumber(ARGV[11])) end -- the worker waits idle
-- 7th: outcomes wait in `outflow` for a relay to other queues (flows; written by this or
-- any other script that finishes jobs), else 0
return {job_records(ids), due, recovered, rejected, more, throttle,
  redis.call('EXISTS', K.outflow)}
