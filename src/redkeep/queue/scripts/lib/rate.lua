-- The queue's rate limit (meta field `rate` = "<max jobs>|<window ms>"): a sliding-window log.
-- `ratelog` holds one entry per job start of the last window (member "<id>:<token>", score the
-- start time in ms on the server clock); at most `max` entries may be in the window.

-- Parse a `rate` field: max jobs, window ms.
local function rate_spec(rate)
  local max, per = string.match(rate, '^(%d+)|(%d+)$')
  return tonumber(max), tonumber(per)
end

-- How many jobs may start now under `rate` (drops the starts that left the window).
local function rate_room(rate)
  local max, per = rate_spec(rate)
  redis.call('ZREMRANGEBYSCORE', K.ratelog, '-inf', now - per)
  return math.max(0, max - redis.call('ZCARD', K.ratelog))
end

-- Log the starts of `claimed` ({id, token, ...}); the log expires a window after the last one.
local function rate_record(rate, claimed)
  local args = {}
  for k = 1, #claimed, 2 do
    args[#args + 1] = now_s
    args[#args + 1] = claimed[k] .. ':' .. claimed[k + 1]
  end
  redis.call('ZADD', K.ratelog, unpack(args))
  local _, per = rate_spec(rate)
  redis.call('PEXPIRE', K.ratelog, per)
end

-- ms until the window has room again (the oldest start leaves it); at least 1.
local function rate_wait(rate)
  local _, per = rate_spec(rate)
  local head = redis.call('ZRANGE', K.ratelog, 0, 0, 'WITHSCORES')
  if #head == 0 then return 1 end
  return math.max(1, tonumber(head[2]) + per - now)
end
