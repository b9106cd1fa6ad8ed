-- Core of the queue scripts: server time, job state records and the one function through which
-- every job status change goes. Included first by every script; uses the key table K the
-- loader builds from the script's "-- KEYS[n] name" header lines (functions take key *names*
-- and index K, so every key they touch is one of KEYS).
-- Kept small on purpose: a script pays for defining every function it includes on each call,
-- and the commonest enqueue returns after this file (see enqueue.lua); the rest of the library
-- is in records.lua.

local _t = redis.call('TIME')
-- Lua formats a number with sprintf each time it is concatenated or passed to redis.call (about
-- ten times the cost of a string): times written as "now" use this one string.
local now_s = _t[1] .. string.sub('00000' .. _t[2], -6, -4)
local now = tonumber(now_s)

-- -- state records ----------------------------------------------------------------------------
-- One field of the `state` hash per job:
--   status|attempts|token|priority|max_attempts|created|run_at|started|finished|worker[|...]
-- Times in ms; started, finished and worker may be empty. Anything after `worker` (`ext`)
-- belongs to a later layout and is kept as it is. Python's twin is redkeep.queue.codec.
-- Decoded fields stay strings, so a record is written back without formatting numbers again;
-- code that does arithmetic calls tonumber() and may store a number back.

local function encode_state(st)
  return st.status .. '|' .. st.attempts .. '|' .. st.token .. '|' .. st.priority .. '|'
    .. st.max_attempts .. '|' .. st.created .. '|' .. st.run_at .. '|' .. st.started .. '|'
    .. st.finished .. '|' .. st.worker .. st.ext
end

-- A new job's state (status '' until its first transition; strings as stored).
local function new_state(priority, max_attempts, run_at)
  return {status = '', attempts = '0', token = '0', priority = priority,
    max_attempts = max_attempts, created = now_s, run_at = run_at, started = '', finished = '',
    worker = '', ext = ''}
end

-- -- status changes ------------------------------------------------------------------------------
-- Every status has an index zset of the same name (one of KEYS).
local STATUSES = {blocked = true, waiting = true, delayed = true, active = true,
  completed = true, failed = true, cancelled = true}
local FINISHED = {completed = true, failed = true, cancelled = true}

-- Writes go to Redis at once, unless a script working on many jobs opened a batch
-- (records.lua: begin_batch / flush): then they are collected and written with one command
-- per key.
local batch = nil

-- Flows (flows.lua, in the scripts that include it and only while the queue has parents
-- with children): the jobs this call finished, {id, status, ...}, and the retention hook.
local flow_watch, flow_hold = nil, nil

-- @include "events.lua"

-- The one place where a job's status changes, in every script: moves `id` from the index of
-- its current status to the index of `to` with `score` (waiting: run order, delayed: run_at,
-- active: lease expiry, finished: finish time), sets `finished` (now, or `finished_at` when
-- given, for finished statuses) and writes the state record `st` (changed in place; fields the
-- caller changed before the call are written with it). Every change also appends its job
-- event, counts finished jobs and wakes wait() callers (record(), events.lua).
-- Set by lib/groups.lua in the scripts that include it: keeps the group indexes of a grouped
-- job in step with its moves; returns the score to use.
local group_hook = nil

local function transition(id, st, to, score, finished_at)
  local from = st.status
  if group_hook and st.ext ~= '' then score = group_hook(id, st, from, to, score) end
  st.status = to
  if FINISHED[to] then st.finished = finished_at or now_s else st.finished = '' end
  record(id, from, to)
  if flow_watch and FINISHED[to] then
    flow_watch[#flow_watch + 1] = id
    flow_watch[#flow_watch + 1] = to
  end
  if batch then
    if STATUSES[from] then
      local rem = batch.rem[from]
      if not rem then rem = {}; batch.rem[from] = rem end
      rem[#rem + 1] = id
    end
    local add = batch.add[to]
    if not add then add = {}; batch.add[to] = add end
    add[#add + 1] = score
    add[#add + 1] = id
    batch.state[#batch.state + 1] = id
    batch.state[#batch.state + 1] = st
  else
    if STATUSES[from] then redis.call('ZREM', K[from], id) end
    redis.call('ZADD', K[to], score, id)
    redis.call('HSET', K.state, id, encode_state(st))
  end
end

-- A record taken from elsewhere (restore, upgrade), listed in no index yet: returns its
-- status and clears it, so that transition() to that status lists the job instead of moving it.
local function unlisted(st)
  local status = st.status
  st.status = ''
  return status
end

-- -- run order -------------------------------------------------------------------------------------
-- FIFO within a priority: waiting score = -priority * 1e12 + seq, seq from meta (taken in
-- blocks, so a bulk operation increments it once).
local seq_next, seq_last = 1, 0

-- The waiting score of a job of `priority` (a string or number); `block` (default 1) is how
-- many numbers to reserve when the current block is used up (a bulk operation passes how many
-- jobs may still need one).
local function waiting_score(priority, block)
  if seq_next > seq_last then
    local n = block or 1
    seq_last = redis.call('HINCRBY', K.meta, 'seq', n)
    seq_next = seq_last - n + 1
  end
  local s = seq_next
  seq_next = seq_next + 1
  if priority == '0' or priority == 0 then return s end
  return -tonumber(priority) * 1e12 + s
end
