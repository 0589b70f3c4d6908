-- A worker fired a claimed schedule: record it and set when it fires next.
-- KEYS 1: the due set, 2: the schedule's hash. ARGV 1: the name, 2: the claim
-- token, 3: the next due time, 4: the last due time fired ('' if none was),
-- 5: the job made for it ('' if none).
-- Returns 1, or 0 when the claim is void (the schedule was replaced, paused,
-- removed, or claimed again after this worker took too long).
local due, schedule = KEYS[1], KEYS[2]
local name, token, next_due, last_run, last_job = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

if redis.call('HGET', schedule, 'claim') ~= token then return 0 end
redis.call('HDEL', schedule, 'claim')
redis.call('HSET', schedule, 'next', next_due)
if last_run ~= '' then redis.call('HSET', schedule, 'last_run_at', last_run) end
if last_job ~= '' then redis.call('HSET', schedule, 'last_job', last_job) end
if redis.call('HGET', schedule, 'paused') ~= '1' then
  redis.call('ZADD', due, next_due, name)
end
return 1
