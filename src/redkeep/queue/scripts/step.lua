-- One worker step: record finished attempts (fenced by token), reap expired leases, promote
-- due delayed jobs, trim finished jobs, then claim up to N waiting jobs.
-- KEYS[1] the queue's waiting zset (routes the call; every key used shares its hash tag)
-- ARGV[1] key base of the queue, "{<prefix>:q:<queue>}:"; the script uses <base>waiting,
--   delayed, active, completed, failed, cancelled, marker, seq, idle (workers waiting for a
--   hand-off), idleroom (hash: idle member -> jobs it may still be handed), job:<id>, inbox:<id>
-- ARGV[2] worker id  ARGV[3] jobs to claim  ARGV[4] lease ms
-- ARGV[5] completed ttl ms  ARGV[6] completed max  ARGV[7] failed ttl ms  ARGV[8] failed max
-- ARGV[9] batch size for reaping/promoting/trimming
-- ARGV[10] ms to stay registered for hand-offs when nothing is left to claim (0 = do not)
-- ARGV[11] JSON list of outcomes, each [id, token, kind (done|retry|fail|release), data,
--   delay_ms]
-- Jobs handed to this worker by an enqueue (its inbox) are returned with the claimed ones.
-- Returns {claimed jobs (each a flat field/value list), ms until next delayed job or -1,
--   leases recovered, rejected ids, 1 if more jobs are waiting else 0}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local base = ARGV[1]
local K = {KEYS[1], base .. 'delayed', base .. 'active', base .. 'completed', base .. 'failed',
  base .. 'cancelled', base .. 'marker', base .. 'seq', base .. 'idle', base .. 'idleroom'}
local jp = base .. 'job:'
local inbox = base .. 'inbox:' .. ARGV[2]
local batch = tonumber(ARGV[9])
local wake = false
local rejected = {}

local function requeue(jk, id)
  local prio = tonumber(redis.call('HGET', jk, 'priority')) or 0
  local seq = redis.call('INCR', K[8])
  redis.call('ZADD', K[1], -prio * 1e12 + seq, id)
  wake = true
end

-- 0. no longer idle; collect jobs handed over since the last step
local me = ARGV[2] .. '|' .. ARGV[4]
redis.call('ZREM', K[9], me)
redis.call('HDEL', K[10], me)
local claimed = {}
local handed = redis.call('ZRANGE', inbox, 0, -1)
if #handed > 0 then
  redis.call('DEL', inbox)
  for _, data in ipairs(handed) do
    local flat = cjson.decode(data)
    local id = nil
    for k = 1, #flat, 2 do
      if flat[k] == 'id' then id = flat[k + 1] end
    end
    if id then
      local jk = jp .. id
      local st = redis.call('HMGET', jk, 'status', 'worker')
      if st[1] == 'active' and st[2] == ARGV[2] then
        claimed[#claimed + 1] = redis.call('HGETALL', jk)
      end
    end
  end
end

-- 1. outcomes
local outcomes = cjson.decode(ARGV[11])
local n_done = #outcomes
for _, o in ipairs(outcomes) do
  local id, token, kind, data, delay = o[1], tonumber(o[2]), o[3], o[4], tonumber(o[5])
  local jk = jp .. id
  local st = redis.call('HMGET', jk, 'status', 'token', 'attempts', 'max_attempts')
  local attempts, max_attempts = tonumber(st[3]) or 1, tonumber(st[4]) or 1
  if st[1] ~= 'active' or tonumber(st[2]) ~= token then
    rejected[#rejected + 1] = id
  else
    redis.call('ZREM', K[3], id)
    if kind == 'done' then
      redis.call('HSET', jk, 'status', 'completed', 'finished', now, 'result', data)
      redis.call('ZADD', K[4], now, id)
    elseif kind == 'release' then
      local left = attempts - 1
      if left < 0 then left = 0 end
      redis.call('HSET', jk, 'status', 'waiting', 'attempts', left)
      requeue(jk, id)
    elseif kind == 'retry' and attempts < max_attempts then
      redis.call('HSET', jk, 'status', 'delayed', 'error', data, 'run_at', now + delay)
      redis.call('ZADD', K[2], now + delay, id)
    else
      redis.call('HSET', jk, 'status', 'failed', 'finished', now, 'error', data)
      redis.call('ZADD', K[5], now, id)
    end
  end
end

-- 2. expired leases: back to waiting, or failed once attempts are used up
local recovered = 0
local expired = redis.call('ZRANGEBYSCORE', K[3], '-inf', now, 'LIMIT', 0, batch)
for _, id in ipairs(expired) do
  local jk = jp .. id
  redis.call('ZREM', K[3], id)
  local st = redis.call('HMGET', jk, 'attempts', 'max_attempts')
  if st[1] then
    local err = '["LeaseExpired","lease expired",""]'
    recovered = recovered + 1
    if (tonumber(st[1]) or 1) >= (tonumber(st[2]) or 1) then
      redis.call('HSET', jk, 'status', 'failed', 'finished', now, 'error', err)
      redis.call('ZADD', K[5], now, id)
    else
      redis.call('HSET', jk, 'status', 'waiting', 'error', err)
      requeue(jk, id)
    end
  end
end

-- 3. due delayed jobs
local due = redis.call('ZRANGEBYSCORE', K[2], '-inf', now, 'LIMIT', 0, batch)
for _, id in ipairs(due) do
  local jk = jp .. id
  redis.call('ZREM', K[2], id)
  if redis.call('EXISTS', jk) == 1 then
    redis.call('HSET', jk, 'status', 'waiting')
    requeue(jk, id)
  end
end

-- 4. claim
local want = tonumber(ARGV[3]) - #claimed
local got = 0
if want > 0 then
  local popped = redis.call('ZPOPMIN', K[1], want)
  local expiry = now + tonumber(ARGV[4])
  for k = 1, #popped, 2 do
    local id = popped[k]
    local jk = jp .. id
    -- Only job hashes are claimed; anything else under a job key is dropped from the queue.
    if redis.call('TYPE', jk)['ok'] == 'hash' then
      -- Fields are sanitised (a corrupted record must not break the batch it is claimed in).
      local f = redis.call('HMGET', jk, 'attempts', 'token')
      redis.call('HSET', jk, 'attempts', (tonumber(f[1]) or 0) + 1,
        'token', (tonumber(f[2]) or 0) + 1, 'status', 'active', 'started', now,
        'worker', ARGV[2])
      redis.call('ZADD', K[3], expiry, id)
      claimed[#claimed + 1] = redis.call('HGETALL', jk)
      got = got + 1
    end
  end
end

local more = 0
if redis.call('ZCARD', K[1]) > 0 then
  more = 1
  if want > 0 then wake = true end
elseif tonumber(ARGV[10]) > 0 and want > got then
  redis.call('ZADD', K[9], now + tonumber(ARGV[10]), me)
  redis.call('HSET', K[10], me, want - got)
end
local busy = n_done > 0 or #claimed > 0
-- 5. retention of finished jobs (removed jobs leave no keys)
-- A busy step trims a little more than it finished (keeps up, stays cheap); an idle one a batch.
local n_trim = batch
if busy then n_trim = math.min(batch, 2 * n_done + 10) end
local function trim(zkey, ttl, max)
  local old = redis.call('ZRANGEBYSCORE', zkey, '-inf', now - ttl, 'LIMIT', 0, n_trim)
  for _, id in ipairs(old) do
    redis.call('DEL', jp .. id)
    redis.call('ZREM', zkey, id)
  end
  local excess = redis.call('ZCARD', zkey) - max
  if excess > 0 then
    if excess > n_trim then excess = n_trim end
    local ids = redis.call('ZRANGE', zkey, 0, excess - 1)
    for _, id in ipairs(ids) do
      redis.call('DEL', jp .. id)
      redis.call('ZREM', zkey, id)
    end
  end
end
local cttl, cmax = tonumber(ARGV[5]), tonumber(ARGV[6])
trim(K[4], cttl, cmax)
trim(K[6], cttl, cmax)
trim(K[5], tonumber(ARGV[7]), tonumber(ARGV[8]))

if wake then redis.call('ZADD', K[7], 0, 'w') end
local next_due = -1
local head = redis.call('ZRANGE', K[2], 0, 0, 'WITHSCORES')
if #head > 0 then next_due = tonumber(head[2]) - now end
return {claimed, next_due, recovered, rejected, more}
