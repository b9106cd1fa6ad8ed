-- Release a get_or_set stampede lock only if we still own it (compare-and-delete).
-- KEYS[1]: the lock key
-- ARGV[1]: the random token written when the lock was taken
-- Returns 1 when the lock was ours and is deleted, 0 otherwise.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
