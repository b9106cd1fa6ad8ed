-- Cancel a waiting, delayed or active job (an active one's worker sees it at lease renewal).
-- KEYS[1] waiting  KEYS[2] delayed  KEYS[3] active  KEYS[4] cancelled
-- ARGV[1] job hash key prefix  ARGV[2] job id
-- Returns the previous status, or false when the job is unknown or already finished.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[2]
local jk = ARGV[1] .. id
local st = redis.call('HGET', jk, 'status')
local from = {waiting = KEYS[1], delayed = KEYS[2], active = KEYS[3]}
if not st or not from[st] then return false end
redis.call('ZREM', from[st], id)
redis.call('HSET', jk, 'status', 'cancelled', 'finished', now)
redis.call('ZADD', KEYS[4], now, id)
return st
