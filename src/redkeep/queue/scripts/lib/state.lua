-- Shared core of the queue scripts: server time, job state records, buffered writes and the
-- one function through which every job status change goes. Included first by every script;
-- uses the key table K the loader builds from the script's "-- KEYS[n] name" header lines
-- (functions below take key *names* and index K, so every key they touch is one of KEYS).

local _t = redis.call('TIME')
local now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)

-- -- state records ----------------------------------------------------------------------------
-- One field of the `state` hash per job:
--   status|attempts|token|priority|max_attempts|created|run_at|started|finished|worker[|...]
-- Times in ms; started, finished and worker may be empty. Anything after `worker` belongs to
-- a later layout and is kept as it is. Python's twin is redkeep.queue.codec.

-- Decoded state of a stored record, or nil when the record does not parse.
local function decode_state(rec)
  local s, a, t, p, m, c, r, b, f, w, x = string.match(rec,
    '^(%l+)|(%d+)|(%d+)|(-?%d+)|(%d+)|(%d*)|(%d*)|(%d*)|(%d*)|([^|\n]*)(.*)$')
  if not s then return nil end
  return {status = s, attempts = tonumber(a), token = tonumber(t), priority = tonumber(p),
    max_attempts = tonumber(m), created = c, run_at = r, started = b, finished = f, worker = w,
    ext = x}
end

local function encode_state(st)
  return st.status .. '|' .. st.attempts .. '|' .. st.token .. '|' .. st.priority .. '|'
    .. st.max_attempts .. '|' .. st.created .. '|' .. st.run_at .. '|' .. st.started .. '|'
    .. st.finished .. '|' .. st.worker .. st.ext
end

-- A fresh state record for a new job.
local function new_state(status, priority, max_attempts, run_at)
  return {status = status, attempts = 0, token = 0, priority = priority,
    max_attempts = max_attempts, created = now, run_at = run_at, started = '', finished = '',
    worker = '', ext = ''}
end

-- -- buffered writes -------------------------------------------------------------------------
-- State records and index (zset) moves are collected and written by flush() with one command
-- per key. A job moves at most once between two flush() calls; scripts flush before they
-- read an index they may have written.
local w_state = {}
local w_rem = {}
local w_add = {}

-- redis.call(cmd, K[name], args...) in slices small enough for unpack().
local function call_chunked(cmd, name, args)
  local n = #args
  for i = 1, n, 4000 do
    redis.call(cmd, K[name], unpack(args, i, math.min(i + 3999, n)))
  end
end

-- Queue `st` to be written as the state of `id` at the next flush() (encoded then, so later
-- changes to `st` before the flush are written too).
local function put_state(id, st)
  w_state[#w_state + 1] = id
  w_state[#w_state + 1] = st
end

local function index_add(name, score, id)
  local t = w_add[name]
  if not t then t = {}; w_add[name] = t end
  t[#t + 1] = score
  t[#t + 1] = id
end

local function index_rem(name, id)
  local t = w_rem[name]
  if not t then t = {}; w_rem[name] = t end
  t[#t + 1] = id
end

local function flush()
  if #w_state > 0 then
    for i = 2, #w_state, 2 do w_state[i] = encode_state(w_state[i]) end
    call_chunked('HSET', 'state', w_state)
    w_state = {}
  end
  for name, ids in pairs(w_rem) do call_chunked('ZREM', name, ids) end
  for name, args in pairs(w_add) do call_chunked('ZADD', name, args) end
  w_rem, w_add = {}, {}
end

-- -- status changes ----------------------------------------------------------------------------
-- Every status has an index zset of the same name (one of KEYS).
local STATUSES = {waiting = true, delayed = true, active = true, completed = true,
  failed = true, cancelled = true}
local FINISHED = {completed = true, failed = true, cancelled = true}

-- The one place where a job's status changes, in every script: moves `id` from the index of
-- its current status to the index of `to` with `score` (waiting: run order, delayed: run_at,
-- active: lease expiry, finished: finish time), sets finished, and queues the state record
-- (`st`, changed in place) for the next flush(). Other fields the caller changes on `st`
-- before the call are written with it.
--
-- HOOK for later layouts: this is where the job event (a Redis Stream entry: id, from, to,
-- time) and the per-minute counters will be appended, so that no status change can miss them.
local function transition(id, st, to, score)
  local from = st.status
  if STATUSES[from] then index_rem(from, id) end
  st.status = to
  if FINISHED[to] then st.finished = now else st.finished = '' end
  index_add(to, score, id)
  put_state(id, st)
end

-- -- run order -----------------------------------------------------------------------------------
-- FIFO within a priority: waiting score = -priority * 1e12 + seq, seq from meta (taken in
-- blocks, so a bulk operation increments it once).
local seq_next, seq_last = 1, 0

local function reserve_seq(n)
  seq_last = redis.call('HINCRBY', K.meta, 'seq', n)
  seq_next = seq_last - n + 1
end

-- The waiting score of a job of `priority`; `block` (default 1) is how many numbers to reserve
-- when the current block is used up (a bulk operation passes how many jobs may still need one).
local function waiting_score(priority, block)
  if seq_next > seq_last then reserve_seq(block or 1) end
  local s = seq_next
  seq_next = seq_next + 1
  return -priority * 1e12 + s
end

-- -- removal ---------------------------------------------------------------------------------------
-- Delete every record of the jobs `ids` (not their index entries).
local function delete_records(ids)
  if #ids == 0 then return end
  call_chunked('HDEL', 'state', ids)
  call_chunked('HDEL', 'data', ids)
  call_chunked('HDEL', 'results', ids)
  call_chunked('HDEL', 'errors', ids)
end
