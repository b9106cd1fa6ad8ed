-- Claim the schedules whose next tick is due within the look-ahead, for one scheduling pass
-- of one worker: each is hidden from other workers until the claim lease ends (the pass fires
-- it long before). Records the time of this pass; the previous one tells whether schedules
-- ran meanwhile. A re-sent request (same request id) claims nothing more and returns the
-- schedules of the first run; a first run that found nothing due (an idle pass: 6 commands)
-- keeps no memo, so its re-send is a pass of its own.
-- @idempotent
-- KEYS[1] schedules
-- KEYS[2] schedstate
-- KEYS[3] schedtimes
-- KEYS[4] meta        schedpass: time of the last pass (ms)
-- KEYS[5] schedclaims worker id -> "<request id>\n<JSON [previous pass, ids...]>"
-- ARGV[1] worker id  ARGV[2] request id  ARGV[3] most schedules to claim
-- ARGV[4] claim lease ms  ARGV[5] look-ahead ms
-- Returns {now ms, previous pass ms or -1, {id, definition, state, ...}, next due tick ms
--   after the claimed ones or -1}
local _t = redis.call('TIME')
local now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)
local me, rid = ARGV[1], ARGV[2]

local ids, prev
local memo = redis.call('HGET', K.schedclaims, me)
if memo and string.sub(memo, 1, #rid + 1) == rid .. '\n' then
  local m = cjson.decode(string.sub(memo, #rid + 2))
  prev = m[1]
  ids = {}
  for i = 2, #m do ids[#ids + 1] = m[i] end
else
  prev = tonumber(redis.call('HGET', K.meta, 'schedpass')) or -1
  redis.call('HSET', K.meta, 'schedpass', now)
  local horizon = now + tonumber(ARGV[5])
  local head = redis.call('ZRANGE', K.schedtimes, 0, 0, 'WITHSCORES')
  if #head == 0 or tonumber(head[2]) > horizon then -- nothing due: no memo (see above)
    return {now, prev, {}, head[2] and tonumber(head[2]) or -1}
  end
  ids = redis.call('ZRANGEBYSCORE', K.schedtimes, '-inf', horizon, 'LIMIT', 0, tonumber(ARGV[3]))
  local lease = now + tonumber(ARGV[4])
  local m = {prev}
  for _, id in ipairs(ids) do
    redis.call('ZADD', K.schedtimes, lease, id)
    m[#m + 1] = id
  end
  redis.call('HSET', K.schedclaims, me, rid .. '\n' .. cjson.encode(m))
end

local out = {}
if #ids > 0 then
  local defs = redis.call('HMGET', K.schedules, unpack(ids))
  local states = redis.call('HMGET', K.schedstate, unpack(ids))
  for i, id in ipairs(ids) do
    if defs[i] and states[i] then
      out[#out + 1] = id
      out[#out + 1] = defs[i]
      out[#out + 1] = states[i]
    end
  end
end
local head = redis.call('ZRANGE', K.schedtimes, 0, 0, 'WITHSCORES')
local next_due = -1
if #head > 0 then next_due = tonumber(head[2]) end
return {now, prev, out, next_due}
