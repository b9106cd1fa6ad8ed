-- The events of one job among the newest entries of the queue's event stream (a bounded scan
-- on the server, so that only the job's own entries cross the network). Reads only.
-- @idempotent
-- KEYS[1] events
-- ARGV[1] job id  ARGV[2] entries to scan, newest first  ARGV[3] most events to return
-- Returns {{stream id, {field, value, ...}}, ...}, newest first.
local id, want = ARGV[1], tonumber(ARGV[3])
local entries = redis.call('XREVRANGE', K.events, '+', '-', 'COUNT', ARGV[2])
local out = {}
for _, entry in ipairs(entries) do
  local f = entry[2]
  if f[2] == id then
    out[#out + 1] = entry
    if #out >= want then break end
  end
end
return out
