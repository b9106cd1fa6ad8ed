-- What transition() records with every status change, besides the change itself: one job
-- event in the queue's bounded stream, the per-minute counters of finished jobs, and the
-- wake-up of wait() callers. Included by state.lua (uses now, batch, FINISHED).
-- Keys: K.events (stream: fields j = job id, e = event, p = previous status, r = will retry,
-- d = progress JSON), K.meta (field `events`: the stream's MAXLEN ~ bound, '0' = events off,
-- absent = EVENTS_DEFAULT), K.throughput (hash of 60 minute slots: m<slot> = minute number,
-- c<slot> / f<slot> = jobs completed / failed in it), K.waits (hash: job id -> 1 while a wait()
-- caller waits for that job).

local EVENTS_DEFAULT = '10000'
local WAITED_MAX = '1000' -- bound of the stream when events are off (finishes of awaited jobs)
local ev_bound = nil -- the stream's bound for this call, read once
local has_waits = nil
local tp_slot = nil -- the current minute's slot, reset once per call when its minute changed

local function events_bound()
  if not ev_bound then ev_bound = redis.call('HGET', K.meta, 'events') or EVENTS_DEFAULT end
  return ev_bound
end

-- Append an event for job `id` unless events are off; `...` are extra field/value pairs.
local function emit(id, name, ...)
  local bound = events_bound()
  if bound ~= '0' then
    redis.call('XADD', K.events, 'MAXLEN', '~', bound, '*', 'j', id, 'e', name, ...)
  end
end

-- Count a job that finished as `kind` ('c' completed, 'f' failed) in the current minute.
local function count_finished(kind)
  if not tp_slot then
    local m = math.floor(now / 60000)
    tp_slot = tostring(m % 60)
    if redis.call('HGET', K.throughput, 'm' .. tp_slot) ~= tostring(m) then
      redis.call('HSET', K.throughput, 'm' .. tp_slot, tostring(m), 'c' .. tp_slot, '0',
        'f' .. tp_slot, '0')
    end
  end
  if batch then
    batch.count[kind] = (batch.count[kind] or 0) + 1
  else
    redis.call('HINCRBY', K.throughput, kind .. tp_slot, 1)
  end
end

-- The event(s), counters and wake-ups of job `id` moving from status `from` ('' for a new or
-- restored job) to `to`. Event names: enqueued (a new job), waiting (back to waiting: promoted,
-- released, lease expired, retried by hand), delayed, active, completed, failed (r = 1: a
-- retry is scheduled, the job is delayed), cancelled.
local function record(id, from, to)
  local name, retry = to, nil
  if to == 'waiting' and from == '' then
    name = 'enqueued'
  elseif to == 'delayed' and from == 'active' then
    name, retry = 'failed', '1'
  elseif to == 'failed' then
    retry = '0'
  elseif from == '' and (to == 'active' or to == 'delayed' or to == 'blocked') then
    emit(id, 'enqueued', 'p', '')
  end
  if retry then emit(id, name, 'p', from, 'r', retry) else emit(id, name, 'p', from) end
  if FINISHED[to] then
    if has_waits == nil then has_waits = redis.call('EXISTS', K.waits) == 1 end
    if has_waits and redis.call('HDEL', K.waits, id) == 1 and events_bound() == '0' then
      -- events are off: a waiter still hears of the finish
      redis.call('XADD', K.events, 'MAXLEN', '~', WAITED_MAX, '*', 'j', id, 'e', name, 'p', from,
        'r', retry or '0')
    end
    if from ~= '' and to ~= 'cancelled' then count_finished(string.sub(to, 1, 1)) end
  end
end
