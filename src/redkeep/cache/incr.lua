-- Increment a cache counter; a key created here gets the cache's default TTL.
-- KEYS[1]: the cache key
-- ARGV[1]: the integer delta
-- ARGV[2]: TTL in milliseconds for a newly created key, or "" for none
-- Returns the new value; errors (not an integer / overflow) come from INCRBY itself.
local existed = redis.call('EXISTS', KEYS[1])
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if existed == 0 and ARGV[2] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
