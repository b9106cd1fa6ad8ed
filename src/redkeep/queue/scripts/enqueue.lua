-- Enqueue one or more jobs atomically; a job whose id already exists is returned, not re-added.
-- A runnable job enqueued while nothing is waiting and a worker is registered idle is handed
-- straight to that worker: claimed for it (lease, attempt, fencing token) and put in its inbox.
-- KEYS[1] waiting zset   KEYS[2] delayed zset   KEYS[3] marker zset   KEYS[4] sequence counter
-- KEYS[5] idle workers zset   KEYS[6] active zset
-- ARGV[1] job hash key prefix   ARGV[2] inbox key prefix
-- ARGV[3] JSON list of jobs (<= 1000), each [id, name, payload, priority, delay_ms,
--   run_at_ms (0 = none), max_attempts, backoff (JSON or ""), timeout (seconds or ""),
--   1 when the id was chosen by the caller (may exist) else 0 (fresh, unique id)]
-- Returns one entry per job: {1, field, value, ...} for an existing job (its whole hash),
--   or {0, created_ms, status, run_at_ms} for a new one.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local jp = ARGV[1]
local jobs = cjson.decode(ARGV[3])
local n = #jobs
local out = {}
local waiting = {}
local delayed = {}
local seq = tonumber(redis.call('INCRBY', KEYS[4], n)) - n
local handoff = redis.call('ZCARD', KEYS[1]) == 0 and redis.call('EXISTS', KEYS[5]) == 1
if handoff then redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now) end
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
      local member = redis.call('ZRANGE', KEYS[5], 0, 0)[1]
      if member then
        redis.call('ZREM', KEYS[5], member)
        worker, lease = string.match(member, '^(.*)|(%d+)$')
      else
        handoff = false
      end
    end
    if worker then
      status = 'active'
      redis.call('HSET', jk, 'status', 'active', 'attempts', 1, 'token', 1, 'started', now,
        'worker', worker)
      redis.call('ZADD', KEYS[6], now + tonumber(lease), id)
      local inbox = ARGV[2] .. worker
      redis.call('ZADD', inbox, 0, cjson.encode(redis.call('HGETALL', jk)))
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
if #waiting > 0 then redis.call('ZADD', KEYS[1], unpack(waiting)) end
if #delayed > 0 then redis.call('ZADD', KEYS[2], unpack(delayed)) end
if #waiting + #delayed > 0 then redis.call('ZADD', KEYS[3], 0, 'w') end
return out
