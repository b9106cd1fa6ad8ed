-- Record a worker's heartbeat in the worker registry.
-- KEYS[1] registry index (zset: worker id -> heartbeat expiry, ms)  KEYS[2] the worker's hash
-- ARGV[1] worker id  ARGV[2] time to live (ms)  ARGV[3..] field, value pairs of the worker
-- Sets 'last_heartbeat' (server clock, ms) and, on the first beat, 'started_at'; the hash
-- expires after the time to live, expired ids leave the index, and the index itself expires
-- with its last live worker. Returns {started_at, last_heartbeat} (ms).
-- @idempotent
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local fields = {'last_heartbeat', now}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('HSETNX', KEYS[2], 'started_at', now)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], math.max(1, tonumber(last[2]) - now))
return {tonumber(redis.call('HGET', KEYS[2], 'started_at')), now}
