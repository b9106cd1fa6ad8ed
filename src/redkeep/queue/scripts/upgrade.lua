-- Convert jobs of a queue written by redkeep 0.1 (layout 1: one hash per job, built from the
-- job id inside its scripts) to layout 2. The caller read each old hash and built the new
-- records; a job is converted once, by whichever process gets there first: an old hash that
-- is gone was converted (or deleted) already, one whose status or token changed since it was
-- read is left for the caller's next pass.
-- @idempotent
-- KEYS[1] state
-- KEYS[2] data
-- KEYS[3] results
-- KEYS[4] errors
-- KEYS[5] meta       seq, layout
-- KEYS[6] waiting
-- KEYS[7] delayed
-- KEYS[8] active
-- KEYS[9] completed
-- KEYS[10] failed
-- KEYS[11] cancelled
-- KEYS[12] marker
-- KEYS[13] v1index   the layout-1 status zset the jobs were listed in
-- KEYS[14...] the layout-1 job hashes, one per job in ARGV order
-- ARGV[1] the layout-1 seq counter's value ("" = none)
-- ARGV[2...] 7 arguments per job: id, its layout-1 "status|token" as read, state record,
--   data record, result ("" = none), error ("" = none), its score in the layout-1 zset
-- Returns {converted, skipped because changed since read}.
-- @include "lib/records.lua"

if ARGV[1] ~= '' then
  local cur = tonumber(redis.call('HGET', K.meta, 'seq')) or 0
  if tonumber(ARGV[1]) > cur then redis.call('HSET', K.meta, 'seq', ARGV[1]) end
end
redis.call('HSET', K.meta, 'layout', 2)
begin_batch()
local converted, changed = 0, 0
local n = (#ARGV - 1) / 7
for i = 1, n do
  local b = 2 + 7 * (i - 1)
  local id = ARGV[b]
  if redis.call('EXISTS', KEYS[13 + i]) == 0 then
    redis.call('ZREM', K.v1index, id)
  else
    local cur = redis.call('HMGET', KEYS[13 + i], 'status', 'token')
    if (cur[1] or '') .. '|' .. (cur[2] or '') ~= ARGV[b + 1] then
      changed = changed + 1
    else
      local st = redis.call('HEXISTS', K.state, id) == 0 and decode_state(ARGV[b + 2])
      if st and STATUSES[st.status] then
        local finished = st.finished
        local to = unlisted(st)
        if finished == '' then finished = nil end
        transition(id, st, to, tonumber(ARGV[b + 6]) or now, finished)
        redis.call('HSET', K.data, id, ARGV[b + 3])
        if ARGV[b + 4] ~= '' then redis.call('HSET', K.results, id, ARGV[b + 4]) end
        if ARGV[b + 5] ~= '' then redis.call('HSET', K.errors, id, ARGV[b + 5]) end
        converted = converted + 1
      end
      redis.call('DEL', KEYS[13 + i])
      redis.call('ZREM', K.v1index, id)
    end
  end
end
flush()
if converted > 0 then redis.call('ZADD', K.marker, 0, 'w') end
return {converted, changed}
