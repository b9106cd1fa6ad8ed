-- Groups (enqueue(..., group=...)): groups are served round-robin, each with at most
-- `concurrency` active jobs and `max` starts per `per` ms (meta field `glimit` =
-- "<concurrency>|<max>|<per ms>", 0 = no such limit). Included by every script that moves
-- grouped jobs; transition() calls group_hook for a job whose record names a group (`|g=<group>`
-- after the worker field).
-- A grouped waiting job is listed in `waiting` like any other (counts, listings, cancel and
-- retention are unchanged) but scored from GROUP_BASE up, after every ungrouped job, so the
-- ungrouped claim (claim_waiting below UNGROUPED_MAX) never takes it. It is also in `gwait`
-- (all scores 0), member "<group>\n<16-digit run order>\n<id>": ZRANGEBYLEX finds a group's
-- next job in priority/FIFO order. `groups` (zset) holds the groups that may start a job now
-- (jobs waiting, under their limits), scored by turn: a group served goes to the back.
-- `gactive` (hash) counts each group's active jobs; `gsleep` (zset) holds groups whose rate
-- window is full, scored by when it has room; `glog` (zset, scores 0) logs the starts of each
-- group's window, member "<group>\n<13-digit start ms>\n<id>:<token>". Entries of `gwait` whose
-- job no longer waits (deleted) are dropped when the claim meets them.
-- @include "records.lua"

local GROUP_BASE = 4e15
local UNGROUPED_MAX = '(3000000000000000'

local function group_of(st)
  return string.match(st.ext, '|g=([^|]*)')
end

local glimits = nil
-- The group limit: concurrency, max starts, window ms (0 = none).
local function group_limits()
  if not glimits then
    local c, m, p = string.match(redis.call('HGET', K.meta, 'glimit') or '',
      '^(%d+)|(%d+)|(%d+)$')
    glimits = {tonumber(c) or 0, tonumber(m) or 0, tonumber(p) or 0}
  end
  return glimits[1], glimits[2], glimits[3]
end

local function gwait_member(g, score, id)
  return g .. '\n' .. string.format('%016.0f', score - GROUP_BASE + 1e15) .. '\n' .. id
end

-- The `gwait` member of g's next job, or nil.
local function group_head(g)
  return redis.call('ZRANGEBYLEX', K.gwait, '[' .. g .. '\n', '(' .. g .. '\11', 'LIMIT', 0, 1)[1]
end

-- Put g at the back of the rotation when it has a job waiting and room for it (no-op when it
-- is in the rotation or asleep already).
local function group_ready(g)
  if redis.call('ZSCORE', K.groups, g) or redis.call('ZSCORE', K.gsleep, g) then return end
  local conc = group_limits()
  if conc > 0 and tonumber(redis.call('HGET', K.gactive, g) or '0') >= conc then return end
  if not group_head(g) then return end
  redis.call('ZADD', K.groups, redis.call('HINCRBY', K.meta, 'gturn', 1), g)
end

-- Starts g's rate window has room for (drops the starts that left it).
local function group_rate_room(g, max, per)
  local cut = string.format('%013.0f', now - per + 1)
  redis.call('ZREMRANGEBYLEX', K.glog, '[' .. g .. '\n', '(' .. g .. '\n' .. cut)
  return max - redis.call('ZLEXCOUNT', K.glog, '[' .. g .. '\n', '(' .. g .. '\11')
end

-- Out of the rotation until the oldest start of g's window leaves it.
local function group_sleep(g, per)
  redis.call('ZREM', K.groups, g)
  local head = redis.call('ZRANGEBYLEX', K.glog, '[' .. g .. '\n', '(' .. g .. '\11', 'LIMIT', 0, 1)[1]
  local ts = head and tonumber(string.match(head, '\n(%d+)\n')) or now
  redis.call('ZADD', K.gsleep, ts + per, g)
end

-- Groups whose rate window has room again rejoin the rotation.
local function wake_groups()
  local due = redis.call('ZRANGEBYSCORE', K.gsleep, '-inf', now, 'LIMIT', 0, 100)
  for _, g in ipairs(due) do
    redis.call('ZREM', K.gsleep, g)
    group_ready(g)
  end
end

-- `due` (ms until the next delayed job, or -1), or sooner when a sleeping group wakes first.
local function group_due(due)
  local head = redis.call('ZRANGE', K.gsleep, 0, 0, 'WITHSCORES')
  if #head == 0 then return due end
  local at = math.max(0, tonumber(head[2]) - now)
  if due < 0 or at < due then return at end
  return due
end

group_hook = function(id, st, from, to, score)
  local g = group_of(st)
  if not g then return score end
  if from == 'waiting' then
    local sc = redis.call('ZSCORE', K.waiting, id)
    if sc then redis.call('ZREM', K.gwait, gwait_member(g, tonumber(sc), id)) end
  elseif from == 'active' then
    if redis.call('HINCRBY', K.gactive, g, -1) <= 0 then redis.call('HDEL', K.gactive, g) end
  end
  if to == 'active' then
    redis.call('HINCRBY', K.gactive, g, 1)
  elseif to == 'waiting' then
    score = GROUP_BASE + score
    redis.call('ZADD', K.gwait, 0, gwait_member(g, score, id))
  end
  if from == 'active' or to == 'waiting' then group_ready(g) end
  return score
end

-- Claim up to `want` grouped jobs, one group at a time in rotation order; a group that reaches
-- a limit leaves the rotation (it comes back when a job of it ends, or its window has room).
-- Appends {id, token} to `claimed`; returns how many.
local function claim_groups(worker, want, lease_ms, claimed)
  if want <= 0 then return 0 end
  local conc, max, per = group_limits()
  local expiry = tostring(now + lease_ms)
  local n, looked = 0, 0
  local taken = {}
  while n < want and looked < 2 * want + 20 do
    looked = looked + 1
    local g = redis.call('ZRANGE', K.groups, 0, 0)[1]
    if not g then break end
    local member = group_head(g)
    if not member or (conc > 0
        and tonumber(redis.call('HGET', K.gactive, g) or '0') >= conc) then
      redis.call('ZREM', K.groups, g) -- nothing waits, or a lowered limit is reached
    elseif max > 0 and group_rate_room(g, max, per) <= 0 then
      group_sleep(g, per)
    else
      redis.call('ZREM', K.gwait, member)
      local id = string.match(member, '^[^\n]*\n[^\n]*\n(.*)$')
      local st = decode_state(redis.call('HGET', K.state, id) or '')
      if st and st.status == 'waiting' and group_of(st) == g and not taken[id] then
        taken[id] = true
        redis.call('ZREM', K.waiting, id)
        next_attempt(st)
        st.worker = worker
        transition(id, st, 'active', expiry)
        claimed[#claimed + 1] = id
        claimed[#claimed + 1] = st.token
        n = n + 1
        if max > 0 then
          redis.call('ZADD', K.glog, 0,
            g .. '\n' .. string.format('%013.0f', now) .. '\n' .. id .. ':' .. st.token)
          redis.call('PEXPIRE', K.glog, per)
        end
        redis.call('ZREM', K.groups, g)
        group_ready(g) -- to the back, if it still has a job and room
      end
    end
  end
  return n
end
