-- Delete up to a batch of jobs of one finished status, hashes included.
-- KEYS[1] the status zset (completed, failed or cancelled)
-- ARGV[1] job hash key prefix  ARGV[2] batch size
-- Returns the number of jobs deleted (0 when the zset is empty).
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
for _, id in ipairs(ids) do
  redis.call('DEL', ARGV[1] .. id)
  redis.call('ZREM', KEYS[1], id)
end
return #ids
