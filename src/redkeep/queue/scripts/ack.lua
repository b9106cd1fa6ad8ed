-- Write one counter, so that a WAIT after this call on the same connection counts from now.
-- Since Redis 7.2, WAIT confirms its connection's last write: an acknowledged enqueue that
-- found every job already there wrote nothing, so its WAIT alone would not cover the earlier
-- write of those jobs (whose confirmation may have been lost). Replicas apply writes in
-- order: once they have this one, they have every earlier one.
-- @idempotent
-- KEYS[1] meta
-- Returns the counter.
return redis.call('HINCRBY', K.meta, 'acks', 1)
