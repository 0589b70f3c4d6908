-- Create or replace a schedule. KEYS 1: the due set (name scored by when it
-- fires next), 2: the schedule's hash, 3: the index of every schedule's name,
-- 4 (when it has an owner): the owner's index.
-- ARGV 1: the name, 2: its spec (JSON), 3: when it fires next (Unix seconds),
-- 4: '1' to keep it paused, '0' to run it, '' to keep what it was, 5: the most
-- schedules one owner may have.
-- Returns 1, or -1 (nothing written) when a new schedule would take its owner
-- past the most. The hash's ``index`` names the owner index the schedule is
-- in, so a replace under another owner and a remove keep both indexes in step.
-- A replaced schedule's claim (a worker firing it now) is void: that worker's
-- advance is refused, so the new spec decides from here.
local due, schedule, names, owned = KEYS[1], KEYS[2], KEYS[3], KEYS[4] or ''
local name, spec, next_due, paused = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local most = tonumber(ARGV[5])

if owned ~= '' and not redis.call('ZSCORE', owned, name)
    and redis.call('ZCARD', owned) >= most then
  return -1
end
local was = redis.call('HGET', schedule, 'index')
if was and was ~= '' and was ~= owned then redis.call('ZREM', was, name) end
if paused == '' then paused = redis.call('HGET', schedule, 'paused') or '0' end
redis.call('HSET', schedule, 'spec', spec, 'next', next_due, 'paused', paused, 'index', owned)
redis.call('HDEL', schedule, 'claim')
redis.call('ZADD', names, 0, name)
if owned ~= '' then redis.call('ZADD', owned, 0, name) end
if paused == '1' then
  redis.call('ZREM', due, name)
else
  redis.call('ZADD', due, next_due, name)
end
return 1
