-- Read the worker registry (redkeep.queue.workers; keys are redkeep.queue.keys.WorkerKeys
-- attributes): the records of the workers whose last heartbeat has not expired, by the server
-- clock. Reads only.
-- @idempotent
-- KEYS[1] beats   worker id -> expiry of its last heartbeat (ms)
-- KEYS[2] info    worker id -> JSON record
-- ARGV[1] most records to return
-- Returns {worker id, JSON record, ...}.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', K.beats, '(' .. now, '+inf', 'LIMIT', 0, tonumber(ARGV[1]))
if #ids == 0 then return {} end
local out = {}
for i, rec in ipairs(redis.call('HMGET', K.info, unpack(ids))) do
  if rec then
    out[#out + 1] = ids[i]
    out[#out + 1] = rec
  end
end
return out
