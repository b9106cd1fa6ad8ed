-- Record a worker's heartbeat in the worker registry (redkeep.queue.workers; keys are
-- redkeep.queue.keys.WorkerKeys attributes). The record gets 'last_heartbeat' (server clock,
-- ms) and keeps the 'started_at' of the worker's first heartbeat unless one is given. Entries
-- whose heartbeats expired are dropped, and both keys expire with the last live worker.
-- @idempotent
-- KEYS[1] beats   worker id -> expiry of its last heartbeat (ms)
-- KEYS[2] info    worker id -> JSON record
-- ARGV[1] worker id  ARGV[2] time to live (ms)  ARGV[3] the record (JSON object: host, pid,
--   queues, concurrency, active, processed)  ARGV[4] started_at (ms) or '' for the first beat's
-- Returns {started_at, last_heartbeat} (ms).

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, ttl = ARGV[1], tonumber(ARGV[2])
local rec = cjson.decode(ARGV[3])
local started = tonumber(ARGV[4])
if not started then
  local old = redis.call('HGET', K.info, id)
  local ok, prev = pcall(cjson.decode, old or '')
  if ok and type(prev) == 'table' then started = tonumber(prev.started_at) end
end
rec.started_at = started or now
rec.last_heartbeat = now
redis.call('HSET', K.info, id, cjson.encode(rec))
redis.call('ZADD', K.beats, now + ttl, id)
local gone = redis.call('ZRANGEBYSCORE', K.beats, '-inf', now, 'LIMIT', 0, 100)
if #gone > 0 then
  redis.call('ZREM', K.beats, unpack(gone))
  redis.call('HDEL', K.info, unpack(gone))
end
local last = redis.call('ZRANGE', K.beats, -1, -1, 'WITHSCORES')
local left = math.max(1, tonumber(last[2]) - now)
redis.call('PEXPIRE', K.beats, left)
redis.call('PEXPIRE', K.info, left)
return {rec.started_at, now}
