-- Replies remembered by request id, so that a script re-sent after a lost reply answers what
-- the first run answered instead of acting twice (admin scripts: cancel, retry, purge,
-- restore). Entries live MEMO_TTL ms; each call trims a few expired ones.
-- @include "records.lua"

local MEMO_TTL = 300000

-- The remembered reply for `rid`, or nil.
local function memo_get(rid)
  local found = redis.call('HGET', K.requests, rid)
  if found then return cjson.decode(found) end
  return nil
end

-- Remember `reply` (a JSON-encodable value) for `rid`, and return it.
local function memo_put(rid, reply)
  redis.call('HSET', K.requests, rid, cjson.encode(reply))
  redis.call('ZADD', K.reqtimes, now, rid)
  local old = redis.call('ZRANGEBYSCORE', K.reqtimes, '-inf', now - MEMO_TTL, 'LIMIT', 0, 10)
  if #old > 0 then
    redis.call('HDEL', K.requests, unpack(old))
    redis.call('ZREM', K.reqtimes, unpack(old))
  end
  return reply
end
