-- Write a job as given (migration); nothing is written when the id exists.
-- KEYS[1] waiting  KEYS[2] delayed  KEYS[3] active  KEYS[4] completed  KEYS[5] failed
-- KEYS[6] cancelled  KEYS[7] marker  KEYS[8] sequence counter
-- ARGV[1] job hash key prefix  ARGV[2] job id  then field, value pairs of the job hash
-- (status, priority, run_at and finished are read from them).
-- An active job is restored with an already expired lease, so a worker's reaper requeues it.
-- Returns 1 when written, 0 when the id existed.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[2]
local jk = ARGV[1] .. id
if redis.call('EXISTS', jk) == 1 then return 0 end
local f = {}
for i = 3, #ARGV, 2 do f[ARGV[i]] = ARGV[i + 1] end
redis.call('HSET', jk, unpack(ARGV, 3))
local st = f['status']
if st == 'waiting' then
  local seq = redis.call('INCR', KEYS[8])
  redis.call('ZADD', KEYS[1], -(tonumber(f['priority']) or 0) * 1e12 + seq, id)
  redis.call('ZADD', KEYS[7], 0, 'w')
elseif st == 'delayed' then
  redis.call('ZADD', KEYS[2], tonumber(f['run_at']) or now, id)
  redis.call('ZADD', KEYS[7], 0, 'w')
elseif st == 'active' then
  redis.call('ZADD', KEYS[3], now, id)
else
  local zkey = {completed = KEYS[4], failed = KEYS[5], cancelled = KEYS[6]}
  redis.call('ZADD', zkey[st], tonumber(f['finished']) or now, id)
end
return 1
