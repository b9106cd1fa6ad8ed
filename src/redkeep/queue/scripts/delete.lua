-- Delete a job that is not active: its hash and its entry in the zset of its status.
-- KEYS[1] the job's hash  KEYS[2] waiting  KEYS[3] delayed  KEYS[4] completed  KEYS[5] failed
-- KEYS[6] cancelled
-- ARGV[1] job id
-- Returns the status the job had ('active' when refused: a worker holds it), or false when
-- there is no such job.
-- @idempotent
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return false end
if st == 'active' then return st end
local from = {waiting = KEYS[2], delayed = KEYS[3], completed = KEYS[4], failed = KEYS[5],
              cancelled = KEYS[6]}
if from[st] then redis.call('ZREM', from[st], ARGV[1]) end
redis.call('DEL', KEYS[1])
return st
