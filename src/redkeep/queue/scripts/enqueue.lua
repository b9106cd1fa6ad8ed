-- Enqueue one or more jobs atomically; a job whose id already exists is returned, not re-added.
-- A runnable job enqueued while nothing is waiting and a worker is registered idle is handed
-- straight to that worker: claimed for it (lease, attempt, fencing token) and put in its inbox.
-- KEYS[1] the queue's waiting zset (routes the call; every key used shares its hash tag)
-- ARGV[1] key base of the queue, "{<prefix>:q:<queue>}:"; the script uses <base>waiting,
--   delayed, marker, seq, idle, active, idleroom, job:<id> and inbox:<worker>
-- ARGV[2] JSON list of jobs (<= 1000), each [id, name, payload, priority, delay_ms,
--   run_at_ms (0 = none), max_attempts, backoff (JSON or ""), timeout (seconds or ""),
--   1 when the id was chosen by the caller (may exist) else 0 (fresh, unique id)]
-- Returns one entry per job: {1, field, value, ...} for an existing job (its whole hash),
--   or {0, created_ms, status, run_at_ms} for a new one.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local base = ARGV[1]
local K = {KEYS[1], base .. 'delayed', base .. 'marker', base .. 'seq', base .. 'idle',
  base .. 'active', base .. 'idleroom'}
local jp = base .. 'job:'
local jobs = cjson.decode(ARGV[2])
local n = #jobs
local out = {}
local waiting = {}
local delayed = {}
local seq = tonumber(redis.call('INCRBY', K[4], n)) - n
local handoff = redis.call('ZCARD', K[1]) == 0 and redis.call('EXISTS', K[5]) == 1
if handoff then
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', K[5], '-inf', now, 'LIMIT', 0, 10)) do
    redis.call('ZREM', K[5], m)
    redis.call('HDEL', K[7], m)
  end
end
for k = 1, n do
  local a = jobs[k]
  local id = a[1]
  local jk = jp .. id
  if a[10] == 1 and redis.call('EXISTS', jk) == 1 then
    local existing = redis.call('HGETALL', jk)
    table.insert(existing, 1, 1)
    out[k] = existing
  else
    local prio = tonumber(a[4])
    local due = now + tonumber(a[5])
    local run_at = tonumber(a[6])
    if run_at > due then due = run_at end
    local status = 'waiting'
    if due > now then status = 'delayed' end
    redis.call('HSET', jk, 'id', id, 'name', a[2], 'payload', a[3], 'status', status,
      'priority', prio, 'max_attempts', a[7], 'created', now, 'run_at', due)
    if a[8] ~= '' then redis.call('HSET', jk, 'backoff', a[8]) end
    if a[9] ~= '' then redis.call('HSET', jk, 'timeout', a[9]) end
    local worker = nil
    local lease = 0
    if status == 'waiting' and handoff and #waiting == 0 then
      local member = redis.call('ZRANGE', K[5], 0, 0)[1]
      if member then
        if redis.call('HINCRBY', K[7], member, -1) <= 0 then
          redis.call('ZREM', K[5], member)
          redis.call('HDEL', K[7], member)
        end
        worker, lease = string.match(member, '^(.*)|(%d+)$')
      else
        handoff = false
      end
    end
    if worker then
      status = 'active'
      redis.call('HSET', jk, 'status', 'active', 'attempts', 1, 'token', 1, 'started', now,
        'worker', worker)
      redis.call('ZADD', K[6], now + tonumber(lease), id)
      local inbox = base .. 'inbox:' .. worker
      redis.call('ZADD', inbox, now, cjson.encode(redis.call('HGETALL', jk)))
      redis.call('PEXPIRE', inbox, tonumber(lease))
    elseif status == 'waiting' then
      waiting[#waiting + 1] = -prio * 1e12 + seq + k
      waiting[#waiting + 1] = id
    else
      delayed[#delayed + 1] = due
      delayed[#delayed + 1] = id
    end
    out[k] = {0, now, status, due}
  end
end
if #waiting > 0 then redis.call('ZADD', K[1], unpack(waiting)) end
if #delayed > 0 then redis.call('ZADD', K[2], unpack(delayed)) end
if #waiting + #delayed > 0 then redis.call('ZADD', K[3], 0, 'w') end
return out
