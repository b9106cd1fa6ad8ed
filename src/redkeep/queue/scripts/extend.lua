-- Renew the leases of jobs a worker holds; a job whose token is stale or that is no longer
-- active (cancelled, reclaimed) is reported as lost.
-- KEYS[1] active zset
-- ARGV[1] job hash key prefix  ARGV[2] lease ms  then pairs: id, token
-- Returns the list of lost ids.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = now + tonumber(ARGV[2])
local lost = {}
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  local st = redis.call('HMGET', ARGV[1] .. id, 'status', 'token')
  if st[1] == 'active' and st[2] == ARGV[i + 1] then
    redis.call('ZADD', KEYS[1], 'XX', expiry, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
