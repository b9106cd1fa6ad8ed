-- Enqueue one or more jobs atomically. Every job carries its id from the client and a job
-- whose id exists is returned, not added again, so a re-sent call adds nothing.
-- A runnable job enqueued while nothing waits and workers are registered idle is handed off
-- (see lib/handoff.lua): claimed at once and put where the first idle worker pops it.
-- @idempotent
-- KEYS[1] state      job id -> state record
-- KEYS[2] data       job id -> immutable record
-- KEYS[3] meta       seq, hlease
-- KEYS[4] waiting
-- KEYS[5] delayed
-- KEYS[6] active
-- KEYS[7] marker     wake-up marker
-- KEYS[8] handoff    jobs handed to idle workers
-- KEYS[9] idle       idle worker registrations
-- KEYS[10] events
-- KEYS[11] throughput
-- KEYS[12] waits
-- KEYS[13] dedup      dedup key -> "<expiry ms>|<job id>" (lib/dedup.lua)
-- KEYS[14] dedupexp
-- KEYS[15] gwait      grouped jobs (lib/groups.lua)
-- KEYS[16] groups
-- KEYS[17] gactive
-- KEYS[18] gsleep
-- ARGV[1] number of jobs n (<= 1000), then per job 3 arguments:
--   id, options "max_attempts|priority|delay_ms|run_at_ms" (run_at 0 = none) followed, for a
--   job of a group, by "|g=<group>", then, for a job with a dedup key, by
--   "|dedup_ttl_ms|debounce_ms|idlen|dedup key" (idlen: bytes of "[<id JSON>" at the start of
--   the data record), data record. A grouped job is never handed off.
-- Returns, for one new job left waiting, its creation time (ms, an integer); otherwise
--   {created_ms, {indexes of the jobs handed off}, {index, id, state, data, ...} for each job
--   that already existed or that its dedup key found (debounced or not)}. A new job's run_at
--   is max(created + delay, run_at). (The result and error of an existing finished job are
--   read by the caller: fewer keys on the hot path.)
-- @include "lib/state.lua"

local n = tonumber(ARGV[1])

-- The commonest case first, before the rest of the library is defined: one job, runnable now,
-- and no idle worker to hand it to. A job whose id exists falls through to the general path,
-- which returns it.
if n == 1 then
  local id, data = ARGV[2], ARGV[4]
  local max_attempts, priority = string.match(ARGV[3], '^(%d+)|(-?%d+)|0|0$')
  if max_attempts and redis.call('EXISTS', K.idle) == 0
      and redis.call('HSETNX', K.data, id, data) == 1 then
    transition(id, new_state(priority, max_attempts, now_s), 'waiting', waiting_score(priority))
    redis.call('ZADD', K.marker, 0, 'w')
    return now
  end
end

-- @include "lib/handoff.lua"
-- @include "lib/dedup.lua"
-- @include "lib/groups.lua"

if n > 1 then begin_batch() end -- one job: its writes go out at once, no batch to collect
local ids = {}
for k = 1, n do ids[k] = ARGV[3 * k - 1] end
local stored = redis.call('HMGET', K.state, unpack(ids))
local seen = {}
local existing = {}
local handed = {}
local data_args = {}
local room = -1 -- hand-offs still allowed; computed when the first runnable job comes
local hlease = nil
local n_wait = 0
local queued = false -- a job went to waiting or delayed: wake idle workers

for k = 1, n do
  local id = ids[k]
  local base = 3 * k - 1
  local data = ARGV[base + 2]
  local max_attempts, priority, delay, run_at, dd = string.match(ARGV[base + 1],
    '^(%d+)|(-?%d+)|(%d+)|(%d+)(.*)$')
  local ttl, bounce, idlen, dkey, eid, est, grp
  if string.sub(dd, 1, 3) == '|g=' then grp, dd = string.match(dd, '^|g=([^|]*)(.*)$') end
  if dd ~= '' and not (stored[k] or seen[id]) then
    ttl, bounce, idlen, dkey = string.match(dd, '^|(%d+)|(%d+)|(%d+)|(.*)$')
    flush() -- what this call wrote so far is read by the lookup
    eid, est = dedup_find(dkey)
    if eid and bounce ~= '0'
        and not debounce(eid, est, data, tonumber(idlen), priority, max_attempts, bounce) then
      eid = nil -- it started: a new job
    end
  end
  if stored[k] or seen[id] then
    existing[#existing + 1] = k
    existing[#existing + 1] = id
  elseif eid then
    existing[#existing + 1] = k
    existing[#existing + 1] = eid
  else
    seen[id] = true
    local due = now_s
    if delay ~= '0' or run_at ~= '0' then
      due = math.max(now + tonumber(delay), tonumber(run_at))
      if due <= now then due = now_s end
    end
    local st = new_state(priority, max_attempts, due)
    if grp then st.ext = '|g=' .. grp end
    if dkey then
      redis.call('HSET', K.data, id, data)
    else
      data_args[#data_args + 1] = id
      data_args[#data_args + 1] = data
    end
    if due ~= now_s then
      transition(id, st, 'delayed', due)
      queued = true
    else
      if room < 0 then room = handoff_room() end
      if room > 0 and n_wait == 0 and not grp then
        if not hlease then hlease = tonumber(redis.call('HGET', K.meta, 'hlease')) or 30000 end
        hand_off(id, st, data, hlease)
        handed[#handed + 1] = k
        room = room - 1
      else
        transition(id, st, 'waiting', waiting_score(priority, n - k + 1))
        n_wait = n_wait + 1
        queued = true
      end
    end
    if dkey then
      flush()
      dedup_put(dkey, id, ttl)
    end
  end
end

if #data_args > 0 then call_chunked('HSET', 'data', data_args) end
flush() -- also the debounces of a batch that added no job
if queued then redis.call('ZADD', K.marker, 0, 'w') end
if n == 1 and n_wait == 1 then return now end
local found = {}
for i = 1, #existing, 2 do
  local id = existing[i + 1]
  found[#found + 1] = existing[i]
  found[#found + 1] = id
  found[#found + 1] = redis.call('HGET', K.state, id)
  found[#found + 1] = redis.call('HGET', K.data, id)
end
return {now, handed, found}
