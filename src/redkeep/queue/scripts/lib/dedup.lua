-- Deduplication and debounce of enqueues (enqueue.lua; redkeep.queue.dedup is the Python side).
-- Keys: K.dedup (hash: dedup key -> "<expiry ms>|<job id>"), K.dedupexp (zset: dedup key scored
-- by when its entry may be dropped). An entry holds while its job is unfinished or until its
-- expiry (enqueue time + dedup_ttl; the enqueue time itself without a ttl). Entries are written
-- only when a job is created, and each such write drops up to DEDUP_TRIM expired ones (those
-- whose job is still unfinished are looked at again later), so the hash stays bounded by the
-- live entries plus a short backlog.
-- @include "records.lua"

local DEDUP_TRIM = 20
local DEDUP_RECHECK = 60000 -- ms until an expired entry of an unfinished job is looked at again

-- The job the entry of `dkey` holds: its id and decoded state, or nil when there is none (no
-- entry, its job deleted, or finished with the entry's ttl passed).
local function dedup_find(dkey)
  local entry = redis.call('HGET', K.dedup, dkey)
  if not entry then return nil end
  local exp, eid = string.match(entry, '^(%d+)|(.*)$')
  if not eid then return nil end
  local st = decode_state(redis.call('HGET', K.state, eid) or '')
  if st and (not FINISHED[st.status] or tonumber(exp) > now) then return eid, st end
  return nil
end

-- Point `dkey` at the new job `id` for `ttl_ms` (a string), then trim a few expired entries.
local function dedup_put(dkey, id, ttl_ms)
  local exp = now + tonumber(ttl_ms)
  redis.call('HSET', K.dedup, dkey, exp .. '|' .. id)
  redis.call('ZADD', K.dedupexp, exp, dkey)
  local old = redis.call('ZRANGEBYSCORE', K.dedupexp, '-inf', now - 1, 'LIMIT', 0, DEDUP_TRIM)
  for _, key in ipairs(old) do
    if dedup_find(key) then
      redis.call('ZADD', K.dedupexp, now + DEDUP_RECHECK, key)
    else
      redis.call('HDEL', K.dedup, key)
      redis.call('ZREM', K.dedupexp, key)
    end
  end
end

-- Debounce the not yet started job `eid` (state `st`): its data becomes `data` (the new
-- enqueue's record, whose header starts with `idlen` bytes of "[<its own id JSON>"), its
-- priority and max_attempts the new ones, and it starts at now + `debounce_ms`. True when done;
-- false when the job has started (attempted at least once, or active), and a new job is due.
-- A job still waiting (promoted, not claimed yet) moves back to delayed (a `delayed` event);
-- every debounce adds a `debounced` event.
local function debounce(eid, st, data, idlen, priority, max_attempts, debounce_ms)
  if st.attempts ~= '0' or (st.status ~= 'waiting' and st.status ~= 'delayed') then
    return false
  end
  local due = now + tonumber(debounce_ms)
  redis.call('HSET', K.data, eid, '[' .. cjson.encode(eid) .. string.sub(data, idlen + 1))
  local from = st.status
  st.run_at, st.priority, st.max_attempts = due, priority, max_attempts
  if from == 'waiting' then -- promoted, not yet claimed: delayed again
    transition(eid, st, 'delayed', due)
  else
    set_score('delayed', due, eid)
    put_state(eid, st)
  end
  emit(eid, 'debounced', 'p', from)
  return true
end
