-- Flows (job dependencies, redkeep.queue.flows): what happens to blocked children when their
-- parents finish, and the retention guard for parents. Included by the scripts that finish
-- jobs (step, cancel, bulk) and by flow.lua, which creates them.
-- Keys: K.blocked (zset: blocked jobs by creation), K.children (hash: parent id -> JSON array
-- of child ids; an entry "\31<queue>" stands for the parent's proxy in that other queue),
-- K.outflow (list: outcomes to relay to other queues, JSON [queue, parent id, status, result,
-- error]), K.deps (hash: blocked child id -> "<unfinished parents>|<mode>", mode being
-- fail, cancel or ignore), K.state, K.errors, K.meta (seq), K.waiting, K.delayed, K.failed,
-- K.cancelled.
-- Invariant: a job has a `deps` entry exactly while it is blocked. Counters are written at
-- once (never batched), so a parent finishing later in the same call reads the current count.
-- @include "records.lua"

-- Only a queue with parents pays for this: transition() lists the jobs it finishes in
-- flow_watch (state.lua), which settle_flows() works off.
if redis.call('EXISTS', K.children) == 1 then flow_watch = {} end

-- A blocked job whose parents are all done becomes runnable (delayed while its run_at is
-- ahead); `block` as for waiting_score().
local function flow_release(id, st, block)
  if tonumber(st.run_at) > now then
    transition(id, st, 'delayed', st.run_at)
  else
    transition(id, st, 'waiting', waiting_score(st.priority, block))
  end
end

-- The failure recorded on a child whose parent `parent` ended `how` (failed or cancelled).
local function parent_failure(parent, how)
  return cjson.encode({'ParentFailed', 'parent job ' .. parent .. ' ' .. how, ''})
end

-- Apply to blocked job `id` (state `st`, mode `mode`) that its parent `parent` ended as
-- `how` (failed or cancelled): fail it naming the parent, or cancel it.
local function flow_abort(id, st, mode, parent, how)
  redis.call('HDEL', K.deps, id)
  if mode == 'cancel' then
    transition(id, st, 'cancelled', now_s)
  else
    redis.call('HSET', K.errors, id, parent_failure(parent, how))
    transition(id, st, 'failed', now_s)
  end
end

-- Settle the children of every job this call finished (and, through the work list, theirs).
-- Returns true when a child became runnable or an outcome awaits its relay (the caller wakes
-- workers).
local function settle_flows()
  if not flow_watch then return false end
  local woke = false
  local i = 1
  while i < #flow_watch do
    local id, to = flow_watch[i], flow_watch[i + 1]
    i = i + 2
    redis.call('HDEL', K.deps, id) -- a blocked job finished by hand (cancelled) needs none
    local kids = redis.call('HGET', K.children, id)
    if kids then
      for _, kid in ipairs(cjson.decode(kids)) do
        if string.byte(kid, 1) == 31 then -- the proxy in another queue: relayed by a worker
          local res = redis.call('HGET', K.results, id) or false
          local err = redis.call('HGET', K.errors, id) or false
          redis.call('RPUSH', K.outflow, cjson.encode({string.sub(kid, 2), id, to, res, err}))
          kid = ''
          woke = true -- a worker of this queue relays it at its next step: wake one
        end
        local dep = kid ~= '' and redis.call('HGET', K.deps, kid)
        local st = dep and decode_state(redis.call('HGET', K.state, kid) or '')
        if st and st.status == 'blocked' then
          local pending, mode = string.match(dep, '^(%d+)|(%a+)$')
          if to == 'completed' or mode == 'ignore' then
            pending = tonumber(pending) - 1
            if pending <= 0 then
              redis.call('HDEL', K.deps, kid)
              flow_release(kid, st)
              woke = true
            else
              redis.call('HSET', K.deps, kid, pending .. '|' .. mode)
            end
          else
            flow_abort(kid, st, mode, id, to)
          end
        end
      end
    end
  end
  flow_watch = {}
  return woke
end

-- Retention guard: the ids of `ids` (finished jobs of index `name` about to be deleted) that
-- may go. A parent with an unfinished child stays (its result is read when the child runs),
-- moved to the end of its index to be looked at again later; the others lose their
-- `children` entry with their records.
local function hold_parents(ids, name)
  local kids = redis.call('HMGET', K.children, unpack(ids))
  local out, gone = {}, {}
  for i, id in ipairs(ids) do
    local held = false
    if kids[i] then
      for _, kid in ipairs(cjson.decode(kids[i])) do
        local st = string.byte(kid, 1) ~= 31 and decode_state(redis.call('HGET', K.state, kid) or '')
        if st and not FINISHED[st.status] then
          held = true
          break
        end
      end
      if held then
        redis.call('ZADD', K[name], now, id)
      else
        gone[#gone + 1] = id
      end
    end
    if not held then out[#out + 1] = id end
  end
  if #gone > 0 then call_chunked('HDEL', 'children', gone) end
  return out
end

if flow_watch then flow_hold = hold_parents end
