-- Reading, batching and deleting job records (the rest of the core, see state.lua).
-- @include "state.lua"

-- Decoded state of a stored record (fields as strings), or nil when it does not parse.
local function decode_state(rec)
  local s, a, t, p, m, c, r, b, f, w, x = string.match(rec,
    '^(%l+)|(%d+)|(%d+)|(-?%d+)|(%d+)|(%d*)|(%d*)|(%d*)|(%d*)|([^|\n]*)(.*)$')
  if not s then return nil end
  return {status = s, attempts = a, token = t, priority = p, max_attempts = m, created = c,
    run_at = r, started = b, finished = f, worker = w, ext = x}
end

-- The next attempt of a job: attempts and fencing token go up by one.
local function next_attempt(st)
  st.attempts = tonumber(st.attempts) + 1
  st.token = tonumber(st.token) + 1
  st.started = now_s
end

-- Give an attempt back (released, or handed off and never taken).
local function undo_attempt(st)
  st.attempts = math.max(0, tonumber(st.attempts) - 1)
end

-- redis.call(cmd, K[name], args...) in slices small enough for unpack().
local function call_chunked(cmd, name, args)
  local n = #args
  for i = 1, n, 4000 do
    redis.call(cmd, K[name], unpack(args, i, math.min(i + 3999, n)))
  end
end

-- Collect writes from now on (transition, put_state, set_score) until flush().
local function begin_batch()
  batch = {state = {}, rem = {}, add = {}}
end

-- Write what the batch collected, one command per key; the batch stays open. A job moves at
-- most once between two flushes; scripts flush before they read an index they may have written.
local function flush()
  if not batch then return end
  local st = batch.state
  if #st > 0 then
    for i = 2, #st, 2 do st[i] = encode_state(st[i]) end
    call_chunked('HSET', 'state', st)
  end
  for name, ids in pairs(batch.rem) do call_chunked('ZREM', name, ids) end
  for name, args in pairs(batch.add) do call_chunked('ZADD', name, args) end
  batch.state, batch.rem, batch.add = {}, {}, {}
end

-- Write `st` as the state of `id` without a status change (e.g. its worker).
local function put_state(id, st)
  if batch then
    batch.state[#batch.state + 1] = id
    batch.state[#batch.state + 1] = st
  else
    redis.call('HSET', K.state, id, encode_state(st))
  end
end

-- Set the score of `id` in the index of its status `name` (e.g. a renewed lease).
local function set_score(name, score, id)
  if batch then
    local add = batch.add[name]
    if not add then add = {}; batch.add[name] = add end
    add[#add + 1] = score
    add[#add + 1] = id
  else
    redis.call('ZADD', K[name], score, id)
  end
end

-- Remove `id` from the index `name` (an entry without a usable record).
local function unlist(name, id)
  if batch then
    local rem = batch.rem[name]
    if not rem then rem = {}; batch.rem[name] = rem end
    rem[#rem + 1] = id
  else
    redis.call('ZREM', K[name], id)
  end
end

-- Delete every record of the jobs `ids` (not their index entries).
local function delete_records(ids)
  if #ids == 0 then return end
  call_chunked('HDEL', 'state', ids)
  call_chunked('HDEL', 'data', ids)
  call_chunked('HDEL', 'results', ids)
  call_chunked('HDEL', 'errors', ids)
end
