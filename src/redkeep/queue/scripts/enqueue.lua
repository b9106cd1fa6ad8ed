-- Enqueue one or more jobs atomically; a job whose id already exists is returned, not re-added.
-- KEYS[1] waiting zset   KEYS[2] delayed zset   KEYS[3] marker zset   KEYS[4] sequence counter
-- ARGV[1] job hash key prefix   ARGV[2] number of jobs (at most 1000 per call)
-- then 9 values per job: id, name, payload, priority, delay_ms, run_at_ms (0 = none),
--   max_attempts, backoff (JSON or ""), timeout (seconds or "")
-- Returns one entry per job: {1, field, value, ...} for an existing job (its whole hash),
--   or {0, created_ms, status, run_at_ms} for a new one.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local jp = ARGV[1]
local n = tonumber(ARGV[2])
local out = {}
local waiting = {}
local delayed = {}
local seq = tonumber(redis.call('INCRBY', KEYS[4], n)) - n
local i = 3
for k = 1, n do
  local id = ARGV[i]
  local jk = jp .. id
  if redis.call('EXISTS', jk) == 1 then
    local existing = redis.call('HGETALL', jk)
    table.insert(existing, 1, 1)
    out[k] = existing
  else
    local prio = tonumber(ARGV[i + 3])
    local due = now + tonumber(ARGV[i + 4])
    local run_at = tonumber(ARGV[i + 5])
    if run_at > due then due = run_at end
    local status = 'waiting'
    if due > now then status = 'delayed' end
    redis.call('HSET', jk, 'id', id, 'name', ARGV[i + 1], 'payload', ARGV[i + 2],
      'status', status, 'priority', prio, 'max_attempts', ARGV[i + 6], 'created', now,
      'run_at', due)
    if ARGV[i + 7] ~= '' then redis.call('HSET', jk, 'backoff', ARGV[i + 7]) end
    if ARGV[i + 8] ~= '' then redis.call('HSET', jk, 'timeout', ARGV[i + 8]) end
    if status == 'waiting' then
      waiting[#waiting + 1] = -prio * 1e12 + seq + k
      waiting[#waiting + 1] = id
    else
      delayed[#delayed + 1] = due
      delayed[#delayed + 1] = id
    end
    out[k] = {0, now, status, due}
  end
  i = i + 9
end
if #waiting > 0 then redis.call('ZADD', KEYS[1], unpack(waiting)) end
if #delayed > 0 then redis.call('ZADD', KEYS[2], unpack(delayed)) end
if #waiting + #delayed > 0 then redis.call('ZADD', KEYS[3], 0, 'w') end
return out
