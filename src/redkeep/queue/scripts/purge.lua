-- Delete up to a batch of jobs of one finished status, records included.
-- @idempotent
-- KEYS[1] state
-- KEYS[2] data
-- KEYS[3] results
-- KEYS[4] errors
-- KEYS[5] completed
-- KEYS[6] failed
-- KEYS[7] cancelled
-- KEYS[8] requests   request id -> reply (a re-sent call answers the same)
-- KEYS[9] reqtimes
-- ARGV[1] request id  ARGV[2] status (completed, failed or cancelled)  ARGV[3] batch size
-- Returns the number of jobs deleted (0 when none is left).
-- @include "lib/memo.lua"

local rid, status = ARGV[1], ARGV[2]
local seen = memo_get(rid)
if seen then return seen[1] end
if not FINISHED[status] then return redis.error_reply('ERR purge: not a finished status') end
local ids = redis.call('ZRANGE', K[status], 0, tonumber(ARGV[3]) - 1)
delete_records(ids)
if #ids > 0 then call_chunked('ZREM', status, ids) end
return memo_put(rid, {#ids})[1]
