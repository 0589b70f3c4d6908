-- Create or replace a schedule. KEYS 1: the due set (name scored by when it
-- fires next), 2: the schedule's hash, 3: the set of every schedule's name.
-- ARGV 1: the name, 2: its spec (JSON), 3: when it fires next (Unix seconds),
-- 4: '1' to keep it paused, '0' to run it, '' to keep what it was.
-- A replaced schedule's claim (a worker firing it now) is void: that worker's
-- advance is refused, so the new spec decides from here.
local due, schedule, names = KEYS[1], KEYS[2], KEYS[3]
local name, spec, next_due, paused = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

if paused == '' then paused = redis.call('HGET', schedule, 'paused') or '0' end
redis.call('HSET', schedule, 'spec', spec, 'next', next_due, 'paused', paused)
redis.call('HDEL', schedule, 'claim')
redis.call('SADD', names, name)
if paused == '1' then
  redis.call('ZREM', due, name)
else
  redis.call('ZADD', due, next_due, name)
end
return 1
