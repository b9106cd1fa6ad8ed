-- Enqueue one or more jobs atomically; a job whose id already exists is returned, not re-added.
-- A runnable job enqueued while nothing is waiting and a worker is registered idle is handed
-- straight to that worker: claimed for it (lease, attempt, fencing token) and put in its inbox.
-- KEYS[1] the queue's waiting zset (routes the call; every key used shares its hash tag)
-- ARGV[1] key base of the queue, "{<prefix>:q:<queue>}:"; the script uses <base>waiting,
--   delayed, marker, seq, idle, active, idleroom, job:<id> and inbox:<worker>
-- Then either one job as plain arguments (a single enqueue: no JSON to decode):
--   ARGV[2] id  ARGV[3] name  ARGV[4] payload (JSON)  ARGV[5] max_attempts, and optionally
--   ARGV[6] priority  ARGV[7] 1 when the id was chosen by the caller (may exist) else 0 (fresh,
--   unique id)  ARGV[8] delay_ms  ARGV[9] run_at_ms (0 = none)  ARGV[10] backoff (JSON or "")
--   ARGV[11] timeout (seconds or ""); omitted trailing arguments take these defaults (0 / "").
--   Returns created_ms (an integer) for a new job left waiting (its run_at is created_ms),
--   else {0, created_ms, status, run_at_ms} for a new job (delayed, or active: handed to an
--   idle worker), or {1, field, value, ...} (the whole hash) for an existing one.
-- or several jobs: ARGV[2] JSON list of jobs (<= 1000), each [id, name, payload, priority,
--   delay_ms, run_at_ms (0 = none), max_attempts, backoff (JSON or ""), timeout (seconds or ""),
--   1 when the id was chosen by the caller (may exist) else 0 (fresh, unique id)].
--   Returns one entry per job: {1, field, value, ...} for an existing job (its whole hash), or
--   {0, created_ms, status, run_at_ms} for a new one.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local base = ARGV[1]
local idle = base .. 'idle'
local idleroom = base .. 'idleroom'
local jp = base .. 'job:'
local idle_workers = redis.call('EXISTS', idle) == 1
if #ARGV == 5 and not idle_workers then
  -- The common case, kept short: one job with every default (fresh id, priority 0, runnable
  -- now) and no idle worker to hand it to, so it waits. Same fields and score as add() below.
  local id = ARGV[2]
  local seq = redis.call('INCR', base .. 'seq')
  redis.call('HSET', jp .. id, 'id', id, 'name', ARGV[3], 'payload', ARGV[4], 'status',
    'waiting', 'priority', 0, 'max_attempts', ARGV[5], 'created', now, 'run_at', now)
  redis.call('ZADD', KEYS[1], seq, id)
  redis.call('ZADD', base .. 'marker', 0, 'w')
  return now
end
local single = #ARGV ~= 2
local jobs
local n = 1
if not single then
  jobs = cjson.decode(ARGV[2])
  n = #jobs
end
local waiting = {}
local delayed = {}
local seq = nil -- taken (n numbers at once) by the first job that waits
local handoff = idle_workers and redis.call('ZCARD', KEYS[1]) == 0

-- The idle worker to hand the next runnable job to (the longest registered one), taking one of
-- its free slots; expired registrations met on the way are dropped (at most 10 per call).
local function take_idle()
  for _ = 1, 10 do
    local head = redis.call('ZRANGE', idle, 0, 0, 'WITHSCORES')
    local member = head[1]
    if not member then return nil end
    local live = tonumber(head[2]) >= now
    if not live or redis.call('HINCRBY', idleroom, member, -1) <= 0 then
      redis.call('ZREM', idle, member)
      redis.call('HDEL', idleroom, member)
    end
    if live then return member end
  end
  return nil
end

-- Adds job number k (or returns the existing one); the entry returned for it.
local function add(k, id, name, payload, prio, delay, run_at, attempts, backoff, timeout, check)
  local jk = jp .. id
  if check == 1 and redis.call('EXISTS', jk) == 1 then
    local existing = redis.call('HGETALL', jk)
    table.insert(existing, 1, 1)
    return existing
  end
  local due = now + delay
  if run_at > due then due = run_at end
  local status = 'waiting'
  if due > now then status = 'delayed' end
  local fields = {'id', id, 'name', name, 'payload', payload, 'status', status,
    'priority', tostring(prio), 'max_attempts', attempts, 'created', tostring(now),
    'run_at', tostring(due)}
  if backoff ~= '' then fields[#fields + 1] = 'backoff'; fields[#fields + 1] = backoff end
  if timeout ~= '' then fields[#fields + 1] = 'timeout'; fields[#fields + 1] = timeout end
  local member = nil
  if status == 'waiting' and handoff and #waiting == 0 then
    member = take_idle()
    if not member then handoff = false end
  end
  if member then
    -- Claimed for that worker at once (attempt 1, fencing token 1) and put in its inbox.
    local worker, lease = string.match(member, '^(.*)|(%d+)$')
    status = 'active'
    fields[8] = 'active'
    local n_f = #fields
    fields[n_f + 1], fields[n_f + 2], fields[n_f + 3], fields[n_f + 4] = 'attempts', '1', 'token', '1'
    fields[n_f + 5], fields[n_f + 6], fields[n_f + 7], fields[n_f + 8] = 'started', now, 'worker', worker
    for i = 2, #fields, 2 do fields[i] = tostring(fields[i]) end -- as HGETALL would return them
    redis.call('HSET', jk, unpack(fields))
    redis.call('ZADD', base .. 'active', now + tonumber(lease), id)
    local inbox = base .. 'inbox:' .. worker
    redis.call('ZADD', inbox, now, cjson.encode(fields))
    redis.call('PEXPIRE', inbox, tonumber(lease))
    return {0, now, status, due}
  end
  redis.call('HSET', jk, unpack(fields))
  if status == 'waiting' then
    if not seq then seq = redis.call('INCRBY', base .. 'seq', n) - n end
    waiting[#waiting + 1] = -prio * 1e12 + seq + k
    waiting[#waiting + 1] = id
  else
    delayed[#delayed + 1] = due
    delayed[#delayed + 1] = id
  end
  return {0, now, status, due}
end

local out
if single then
  out = add(1, ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[6] or 0), tonumber(ARGV[8] or 0),
    tonumber(ARGV[9] or 0), ARGV[5], ARGV[10] or '', ARGV[11] or '', tonumber(ARGV[7] or 0))
  if out[1] == 0 and out[3] == 'waiting' then out = now end
else
  out = {}
  for k = 1, n do
    local a = jobs[k]
    out[k] = add(k, a[1], a[2], a[3], tonumber(a[4]), tonumber(a[5]), tonumber(a[6]), a[7],
      a[8], a[9], a[10])
  end
end
if #waiting > 0 then redis.call('ZADD', KEYS[1], unpack(waiting)) end
if #delayed > 0 then redis.call('ZADD', base .. 'delayed', unpack(delayed)) end
if #waiting + #delayed > 0 then redis.call('ZADD', base .. 'marker', 0, 'w') end
return out
