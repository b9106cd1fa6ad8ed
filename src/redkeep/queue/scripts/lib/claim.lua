-- Claiming jobs for a worker, and the job records scripts return.
-- @include "maintain.lua"

-- Fail a job whose state record is missing, does not parse or names an unknown status, with
-- the reason (a fresh record: a worker never gets it, an operator sees why).
local function fail_corrupted(id, rec)
  local why = 'job state record is missing'
  if rec then
    why = 'invalid job state record: ' .. string.gsub(string.sub(rec, 1, 50), '["\\%c]', '?')
  end
  redis.call('HSET', K.errors, id, '["CorruptedRecord","' .. why .. '",""]')
  transition(id, new_state('0', '1', now_s), 'failed', now_s)
end

-- Records of jobs for a reply: flat {id, state, data, error, ...} (false where missing).
local function job_records(ids)
  if #ids == 0 then return {} end
  local recs = redis.call('HMGET', K.state, unpack(ids))
  local datas = redis.call('HMGET', K.data, unpack(ids))
  local errs = redis.call('HMGET', K.errors, unpack(ids))
  local out = {}
  for i, id in ipairs(ids) do
    out[#out + 1] = id
    out[#out + 1] = recs[i]
    out[#out + 1] = datas[i]
    out[#out + 1] = errs[i]
  end
  return out
end

-- Take up to `want` jobs handed off but not yet popped by an idle worker (already claimed:
-- this worker becomes their owner). Appends {id, token} to `claimed`; returns how many.
local function claim_handed(worker, want, lease_ms, claimed)
  if want <= 0 or redis.call('EXISTS', K.handoff) == 0 then return 0 end
  local popped = redis.call('ZPOPMIN', K.handoff, want)
  local expiry = tostring(now + lease_ms)
  local n = 0
  for k = 1, #popped, 2 do
    local id, rec = handoff_entry(popped[k])
    local st = id and decode_state(redis.call('HGET', K.state, id) or '')
    if st and st.status == 'active' and encode_state(st) == rec then
      st.worker = worker
      put_state(id, st)
      set_score('active', expiry, id)
      claimed[#claimed + 1] = id
      claimed[#claimed + 1] = tonumber(st.token)
      n = n + 1
    end
  end
  return n
end

-- Claim up to `want` waiting jobs in run order for `worker`; with `upto`, only those scored
-- below it (ungrouped ones: see lib/groups.lua). A damaged record is failed with the reason (it
-- never breaks the batch); an entry whose record has another status is dropped.
-- Appends {id, token} to `claimed`; returns how many were claimed.
local function claim_waiting(worker, want, lease_ms, claimed, upto)
  if want <= 0 then return 0 end
  local popped
  if upto then
    popped = redis.call('ZRANGEBYSCORE', K.waiting, '-inf', upto, 'WITHSCORES', 'LIMIT', 0, want)
    if #popped == 0 then return 0 end
    local ids = {}
    for k = 1, #popped, 2 do ids[#ids + 1] = popped[k] end
    redis.call('ZREM', K.waiting, unpack(ids))
  else
    popped = redis.call('ZPOPMIN', K.waiting, want)
    if #popped == 0 then return 0 end
  end
  local ids = {}
  for k = 1, #popped, 2 do ids[#ids + 1] = popped[k] end
  local recs = redis.call('HMGET', K.state, unpack(ids))
  local expiry = tostring(now + lease_ms)
  local n = 0
  for i, id in ipairs(ids) do
    local st = recs[i] and decode_state(recs[i])
    if st and st.status == 'waiting' then
      next_attempt(st)
      st.worker = worker
      transition(id, st, 'active', expiry)
      claimed[#claimed + 1] = id
      claimed[#claimed + 1] = st.token
      n = n + 1
    elseif not st or not STATUSES[st.status] then
      fail_corrupted(id, recs[i])
    end
  end
  return n
end
