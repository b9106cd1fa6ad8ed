-- Queue upkeep run by every worker step: expired leases, stale hand-offs, due delayed jobs,
-- retention of finished jobs and forgotten workers. Each function handles at most `batch`
-- jobs and flushes its writes, so the next one sees them.
-- @include "handoff.lua"

local LEASE_EXPIRED = '["LeaseExpired","lease expired",""]'
local WORKER_MEMORY = 600000 -- a worker not seen for 10 min is forgotten (its step memo too)
-- Tombstones of completed jobs removed by retention (K.removed): the newest REMOVED_MAX, for
-- at most REMOVED_TTL ms. flow.lua and flow_link.lua count such a parent as completed.
local REMOVED_MAX = 100000
local REMOVED_TTL = 7 * 86400000

-- Split a hand-off member into the job id and its state record.
local function handoff_entry(member)
  local nl = string.find(member, '\n', 1, true)
  if not nl then return nil, nil end
  local nl2 = string.find(member, '\n', nl + 1, true) or (#member + 1)
  local ok, head = pcall(cjson.decode, string.sub(member, nl + 1, nl2 - 1))
  if not ok or type(head) ~= 'table' or type(head[1]) ~= 'string' then return nil, nil end
  return head[1], string.sub(member, 1, nl - 1)
end

-- Expired leases: a job handed off that nobody took waits again (attempt not counted); any
-- other goes back to waiting, or fails once its attempts are used up. Returns how many leases
-- were recovered.
local function reap_leases(batch)
  local ids = redis.call('ZRANGEBYSCORE', K.active, '-inf', now, 'LIMIT', 0, batch)
  if #ids == 0 then return 0 end
  local recs = redis.call('HMGET', K.state, unpack(ids))
  local recovered = 0
  local errs = {}
  for i, id in ipairs(ids) do
    local st = recs[i] and decode_state(recs[i])
    if not st or st.status ~= 'active' then
      unlist('active', id) -- an entry without a record, or a stale one
    elseif not (st.worker == '' and release_handoff(id, st)) then
      recovered = recovered + 1
      errs[#errs + 1] = id
      errs[#errs + 1] = LEASE_EXPIRED
      if tonumber(st.attempts) >= tonumber(st.max_attempts) then
        transition(id, st, 'failed', now_s)
      else
        transition(id, st, 'waiting', waiting_score(st.priority))
      end
    end
  end
  if #errs > 0 then call_chunked('HSET', 'errors', errs) end
  flush()
  return recovered
end

-- Hand-offs no worker took within `ttl_ms` wait again, their attempt not counted.
local function reap_handoffs(ttl_ms, batch)
  local members = redis.call('ZRANGEBYSCORE', K.handoff, '-inf', now - ttl_ms, 'LIMIT', 0, batch)
  local n = 0
  for _, member in ipairs(members) do
    redis.call('ZREM', K.handoff, member)
    local id, rec = handoff_entry(member)
    local st = id and decode_state(redis.call('HGET', K.state, id) or '')
    if st and encode_state(st) == rec then
      undo_attempt(st)
      transition(id, st, 'waiting', waiting_score(st.priority))
      n = n + 1
    end
  end
  flush()
  return n
end

-- Delayed jobs whose run_at has come move to waiting. Returns how many.
local function promote_due(batch)
  local ids = redis.call('ZRANGEBYSCORE', K.delayed, '-inf', now, 'LIMIT', 0, batch)
  if #ids == 0 then return 0 end
  local recs = redis.call('HMGET', K.state, unpack(ids))
  for i, id in ipairs(ids) do
    local st = recs[i] and decode_state(recs[i])
    if st and st.status == 'delayed' then
      transition(id, st, 'waiting', waiting_score(st.priority, #ids - i + 1))
    else
      unlist('delayed', id)
    end
  end
  flush()
  return #ids
end

-- Retention: delete up to `n` jobs of finished status `name` older than `ttl` ms, then up to
-- `n` of the oldest beyond `max` (records included). A parent whose children are unfinished is
-- kept (flow_hold, flows.lua). Removed completed jobs leave a tombstone in K.removed.
local function trim_finished(name, ttl, max, n)
  local card = redis.call('ZCARD', K[name])
  if card == 0 then return end -- the usual case for cancelled and failed: one call
  local old = redis.call('ZRANGEBYSCORE', K[name], '-inf', now - ttl, 'LIMIT', 0, n)
  if flow_hold and #old > 0 then old = flow_hold(old, name) end
  if #old > 0 then
    delete_records(old, name)
    call_chunked('ZREM', name, old)
  end
  local excess = math.min(card - #old - max, n)
  local ids = {}
  if excess > 0 then
    ids = redis.call('ZRANGE', K[name], 0, excess - 1)
    if flow_hold then ids = flow_hold(ids, name) end
    delete_records(ids, name)
    call_chunked('ZREM', name, ids)
  end
  if name ~= 'completed' or #old + #ids == 0 then return end
  local marks = {}
  for _, list in ipairs({old, ids}) do
    for _, id in ipairs(list) do
      marks[#marks + 1] = now
      marks[#marks + 1] = id
    end
  end
  call_chunked('ZADD', 'removed', marks)
  redis.call('ZREMRANGEBYSCORE', K.removed, '-inf', now - REMOVED_TTL)
  redis.call('ZREMRANGEBYRANK', K.removed, 0, -REMOVED_MAX - 1)
end

-- Workers not seen for WORKER_MEMORY ms: their registration and step memo are dropped.
local function forget_workers()
  local gone = redis.call('ZRANGEBYSCORE', K.workers, '-inf', now - WORKER_MEMORY, 'LIMIT', 0, 10)
  if #gone > 0 then
    redis.call('ZREM', K.workers, unpack(gone))
    redis.call('ZREM', K.idle, unpack(gone))
    redis.call('HDEL', K.steps, unpack(gone))
  end
  redis.call('ZREMRANGEBYSCORE', K.idle, '-inf', now - 1)
end

-- ms until the earliest delayed job is due, or -1 when none is delayed.
local function next_due()
  local head = redis.call('ZRANGE', K.delayed, 0, 0, 'WITHSCORES')
  if #head == 0 then return -1 end
  return math.max(0, tonumber(head[2]) - now)
end

-- For a worker about to wait idle: ms until its next upkeep is due, the earliest of `due` (ms,
-- -1: none), the first lease expiry and the time the oldest hand-off is `ttl_ms` old.
local function upkeep_due(due, ttl_ms)
  local lease = redis.call('ZRANGE', K.active, 0, 0, 'WITHSCORES')
  local handed = redis.call('ZRANGE', K.handoff, 0, 0, 'WITHSCORES')
  local times = {}
  if #lease > 0 then times[#times + 1] = tonumber(lease[2]) end
  if #handed > 0 then times[#times + 1] = tonumber(handed[2]) + ttl_ms end
  for _, t in ipairs(times) do
    t = math.max(0, t - now)
    if due < 0 or t < due then due = t end
  end
  return due
end
