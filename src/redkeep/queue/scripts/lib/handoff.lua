-- Direct hand-off of a job to an idle worker, on fixed keys.
-- An enqueue that finds nothing waiting while workers are registered idle claims the job for
-- "whoever pops it" (attempt counted, new fencing token, lease in `active`, worker left empty)
-- and adds it to the shared `handoff` zset, which idle workers BZPOPMIN together with the
-- wake-up marker: exactly one worker (or one step script) removes each entry. A worker fills
-- in its id when it renews the lease or reports the outcome. An entry nobody takes goes back
-- to waiting without counting the attempt (release_handoff, from the step script's reapers), at
-- once when the last idle worker leaves (handoff_ttl).
-- @include "records.lua"

-- The zset member for a handed job: its state record and its data (what the worker needs to
-- start it without another round trip). Rebuilt to remove the entry, so the state of a job in
-- `handoff` never changes while it is there.
local function handoff_member(st, data)
  return encode_state(st) .. '\n' .. data
end

-- Claim a job for the hand-off (attempt 1 of a new job, or the next one); `st` is changed in
-- place. Returns the zset member.
local function hand_off(id, st, data, lease_ms)
  next_attempt(st)
  st.worker = ''
  transition(id, st, 'active', now + lease_ms)
  local member = handoff_member(st, data)
  redis.call('ZADD', K.handoff, now_s, member)
  return member
end

-- How many more jobs an enqueue may hand off now: live idle registrations minus hand-offs
-- still in flight, when nothing waits (handing off then would jump the queue) and the queue is
-- neither paused nor rate limited (every start of a limited queue goes through step.lua).
local function handoff_room()
  if redis.call('EXISTS', K.idle) == 0 then return 0 end
  local flags = redis.call('HMGET', K.meta, 'paused', 'rate')
  if flags[1] or flags[2] then return 0 end
  local idle = redis.call('ZCOUNT', K.idle, now, '+inf')
  if idle == 0 or redis.call('ZCARD', K.waiting) > 0 then return 0 end
  return idle - redis.call('ZCARD', K.handoff)
end

-- The age after which a step takes hand-offs back: `ttl_ms`, or any age when the step claims
-- nothing (its worker, stopping or without a free slot, just left the idle set) and no live
-- idle worker is left to pop them: they would otherwise wait for their TTL or lease, and for
-- good when no worker steps again.
local function handoff_ttl(ttl_ms, want)
  if want > 0 or redis.call('EXISTS', K.handoff) == 0
      or redis.call('ZCOUNT', K.idle, now, '+inf') > 0 then
    return ttl_ms
  end
  return -86400000
end

-- Take a handed job that is still in `handoff` back: true when it was there (nobody started
-- it); it then waits again, its attempt not counted. False: a worker popped it.
local function release_handoff(id, st)
  local data = redis.call('HGET', K.data, id)
  if not data or redis.call('ZREM', K.handoff, handoff_member(st, data)) == 0 then
    return false
  end
  undo_attempt(st)
  transition(id, st, 'waiting', waiting_score(st.priority))
  return true
end
