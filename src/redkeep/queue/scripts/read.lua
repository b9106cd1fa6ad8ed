-- Read jobs (one consistent snapshot of their records).
-- KEYS[1] state
-- KEYS[2] data
-- KEYS[3] results
-- KEYS[4] errors
-- ARGV job ids
-- Returns {id, state, data, result, error, ...} for each job that exists, in order.
local ids = ARGV
if #ids == 0 then return {} end
local recs = redis.call('HMGET', K.state, unpack(ids))
local datas = redis.call('HMGET', K.data, unpack(ids))
local results = redis.call('HMGET', K.results, unpack(ids))
local errs = redis.call('HMGET', K.errors, unpack(ids))
local out = {}
for i, id in ipairs(ids) do
  if recs[i] or datas[i] then
    out[#out + 1] = id
    out[#out + 1] = recs[i]
    out[#out + 1] = datas[i]
    out[#out + 1] = results[i]
    out[#out + 1] = errs[i]
  end
end
return out
