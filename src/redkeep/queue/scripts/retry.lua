-- Move a failed job back to waiting with its attempts reset.
-- KEYS[1] failed  KEYS[2] waiting  KEYS[3] marker  KEYS[4] sequence counter
-- ARGV[1] job hash key prefix  ARGV[2] job id
-- Returns 1 when moved, 0 when the job is not failed.
local id = ARGV[2]
local jk = ARGV[1] .. id
if redis.call('HGET', jk, 'status') ~= 'failed' then return 0 end
redis.call('ZREM', KEYS[1], id)
redis.call('HSET', jk, 'status', 'waiting', 'attempts', 0)
redis.call('HDEL', jk, 'finished')
local prio = tonumber(redis.call('HGET', jk, 'priority')) or 0
local seq = redis.call('INCR', KEYS[4])
redis.call('ZADD', KEYS[2], -prio * 1e12 + seq, id)
redis.call('ZADD', KEYS[3], 0, 'w')
return 1
