-- Pause or resume a schedule. KEYS 1: the due set, 2: the schedule's hash.
-- ARGV 1: the name, 2: '1' to pause, '0' to resume, 3: when a resumed
-- schedule fires next. Returns 0 when there is no such schedule.
local due, schedule = KEYS[1], KEYS[2]
local name, paused, next_due = ARGV[1], ARGV[2], ARGV[3]

if redis.call('EXISTS', schedule) == 0 then return 0 end
redis.call('HSET', schedule, 'paused', paused)
redis.call('HDEL', schedule, 'claim')
if paused == '1' then
  redis.call('ZREM', due, name)
else
  redis.call('HSET', schedule, 'next', next_due)
  redis.call('ZADD', due, next_due, name)
end
return 1
