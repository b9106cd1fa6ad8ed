-- Create jobs with parents (depends_on; chains and groups of redkeep.queue.flows), all of
-- them or none. A job whose parents have all completed is runnable at once; one with an
-- unfinished parent is `blocked` until flows.lua releases it; one with a failed or cancelled
-- parent is failed or cancelled at once (on_parent_failure) unless its mode is `ignore`.
-- Parents must exist (or be completed and removed by retention since: `removed`), or come
-- earlier in the same call: a cycle cannot be built. A job whose
-- id exists is returned, not added again (a re-sent call adds nothing).
-- A parent in another queue is represented here by a proxy job "<queue>/<id>", status blocked
-- until flow_relay.lua copies the parent's outcome into it (its creation is linked first,
-- see redis_flows.py); proxies are written first, from what the link found.
-- @idempotent
-- KEYS[1] state
-- KEYS[2] data
-- KEYS[3] errors
-- KEYS[4] meta       seq
-- KEYS[5] waiting
-- KEYS[6] delayed
-- KEYS[7] blocked
-- KEYS[8] failed
-- KEYS[9] cancelled
-- KEYS[10] marker
-- KEYS[11] children  parent id -> JSON array of child ids
-- KEYS[12] deps      blocked job id -> "<unfinished parents>|<mode>"
-- KEYS[13] events
-- KEYS[14] throughput
-- KEYS[15] waits
-- KEYS[16] results   proxies of finished parents of other queues get their result
-- KEYS[17] outflow
-- KEYS[18] removed   completed jobs removed by retention: such a parent counts as completed
-- KEYS[19] completed proxies of parents of other queues that completed
-- ARGV[1] number of jobs n, ARGV[2] number of proxies m, then per proxy: id, status of the
--   parent (completed, failed, cancelled, or pending), result, error ('' for none); then per
--   job: id, options
--   "max_attempts|priority|delay_ms|run_at_ms|mode|n_parents" (mode: fail, cancel or ignore),
--   data record, then its n_parents parent ids
-- Returns {created_ms, {status of each job, '' for one that existed},
--   {index, id, state, data, ...} for each job that existed}, or an error reply
--   "ERR flow: ..." naming an unknown parent (nothing written).
-- @include "lib/flows.lua"

local n, m = tonumber(ARGV[1]), tonumber(ARGV[2])
local jobs = {}
local known = {} -- ids of this call: true
local proxies = {}
local pos = 3
for k = 1, m do
  proxies[k] = {id = ARGV[pos], status = ARGV[pos + 1], result = ARGV[pos + 2],
    error = ARGV[pos + 3]}
  known[ARGV[pos]] = true
  pos = pos + 4
end
for k = 1, n do
  local id, opts, data = ARGV[pos], ARGV[pos + 1], ARGV[pos + 2]
  local max_attempts, priority, delay, run_at, mode, np = string.match(opts,
    '^(%d+)|(-?%d+)|(%d+)|(%d+)|(%a+)|(%d+)$')
  if not np then return redis.error_reply('ERR flow: bad options of job ' .. id) end
  np = tonumber(np)
  jobs[k] = {id = id, max_attempts = max_attempts, priority = priority, delay = delay,
    run_at = run_at, mode = mode, data = data, first = pos + 3, np = np}
  pos = pos + 3 + np
end

-- 1. check, write nothing: existing ids, parents known
local ids = {}
for k = 1, n do ids[k] = jobs[k].id end
local stored = {}
for i = 1, n, 4000 do
  local got = redis.call('HMGET', K.state, unpack(ids, i, math.min(i + 3999, n)))
  for j = 1, #got do stored[i + j - 1] = got[j] end
end
local status_of = {} -- parent id -> status
for k = 1, n do
  local job = jobs[k]
  if stored[k] or known[job.id] then
    job.exists = true
  else
    for p = job.first, job.first + job.np - 1 do
      local parent = ARGV[p]
      if not known[parent] and not status_of[parent] then
        local st = decode_state(redis.call('HGET', K.state, parent) or '')
        if not st and redis.call('ZSCORE', K.removed, parent) then
          st = {status = 'completed'} -- removed by retention: completed, result None
        end
        if not st then
          return redis.error_reply('ERR flow: job ' .. job.id .. ' depends on unknown job '
            .. parent .. ' (parents must exist or come earlier in the same call)')
        end
        status_of[parent] = st.status
      end
    end
  end
  known[job.id] = true
end

-- 2. write: the proxies first (a proxy that exists is left as it is)
local proxy_args = {}
for k = 1, m do
  local px = proxies[k]
  local st = decode_state(redis.call('HGET', K.state, px.id) or '')
  if st then
    status_of[px.id] = st.status
  else
    proxy_args[#proxy_args + 1] = px.id
    proxy_args[#proxy_args + 1] = cjson.encode({px.id, 'redkeep.parent', cjson.null}) .. '\nnull'
    st = new_state('0', '1', now_s)
    if FINISHED[px.status] then
      if px.result ~= '' then redis.call('HSET', K.results, px.id, px.result) end
      if px.error ~= '' then redis.call('HSET', K.errors, px.id, px.error) end
      transition(px.id, st, px.status, now_s)
    else
      transition(px.id, st, 'blocked', now_s)
    end
    status_of[px.id] = st.status
  end
end
if #proxy_args > 0 then call_chunked('HSET', 'data', proxy_args) end
begin_batch()
local statuses = {}
local found = {}
local links = {} -- parent id -> list of new child ids
local link_order = {}
local data_args = {}
local queued = false
for k = 1, n do
  local job = jobs[k]
  if job.exists then
    statuses[k] = ''
    if stored[k] then
      found[#found + 1] = k
      found[#found + 1] = job.id
      found[#found + 1] = stored[k]
      found[#found + 1] = redis.call('HGET', K.data, job.id)
    end
  else
    local pending, failed_by, how = {}, nil, nil
    for p = job.first, job.first + job.np - 1 do
      local parent = ARGV[p]
      local s = status_of[parent]
      if s == 'failed' or s == 'cancelled' then
        if job.mode ~= 'ignore' and not failed_by then failed_by, how = parent, s end
      elseif s ~= 'completed' then
        pending[#pending + 1] = parent
      end
    end
    local due = now_s
    if job.delay ~= '0' or job.run_at ~= '0' then
      due = math.max(now + tonumber(job.delay), tonumber(job.run_at))
      if due <= now then due = now_s end
    end
    local st = new_state(job.priority, job.max_attempts, due)
    data_args[#data_args + 1] = job.id
    data_args[#data_args + 1] = job.data
    if failed_by then
      if job.mode == 'cancel' then
        transition(job.id, st, 'cancelled', now_s)
      else
        redis.call('HSET', K.errors, job.id, parent_failure(failed_by, how))
        transition(job.id, st, 'failed', now_s)
      end
    elseif #pending > 0 then
      transition(job.id, st, 'blocked', now_s)
      redis.call('HSET', K.deps, job.id, #pending .. '|' .. job.mode)
      for _, parent in ipairs(pending) do
        local kids = links[parent]
        if not kids then
          kids = {}
          links[parent] = kids
          link_order[#link_order + 1] = parent
        end
        kids[#kids + 1] = job.id
      end
    else
      flow_release(job.id, st, n - k + 1)
      queued = true
    end
    statuses[k] = st.status
    status_of[job.id] = st.status
  end
end
if #data_args > 0 then call_chunked('HSET', 'data', data_args) end
flush()

-- 3. each parent's children list
local m = #link_order
local child_args = {}
for i = 1, m, 4000 do
  local olds = redis.call('HMGET', K.children, unpack(link_order, i, math.min(i + 3999, m)))
  for j = 1, #olds do
    local parent = link_order[i + j - 1]
    local kids = links[parent]
    if olds[j] then
      local all = cjson.decode(olds[j])
      for _, kid in ipairs(kids) do all[#all + 1] = kid end
      kids = all
    end
    child_args[#child_args + 1] = parent
    child_args[#child_args + 1] = cjson.encode(kids)
  end
end
if #child_args > 0 then call_chunked('HSET', 'children', child_args) end
if queued then redis.call('ZADD', K.marker, 0, 'w') end
return {now, statuses, found}
