-- Claim the schedules that are due (Redis's clock), for one worker to fire.
-- KEYS 1: the due set, 2: the claim counter. ARGV 1: the key of a schedule's
-- hash without its name, 2: seconds a claim holds (a worker that dies while
-- firing lets another fire the same due times: their job ids are the same,
-- so nothing runs twice), 3: the most to claim.
-- Returns {name, first due time not fired yet, spec, claim token} per claim.
local due, counter = KEYS[1], KEYS[2]
local base, hold, most = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local claimed = {}
for _, name in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, most)) do
  local schedule = base .. name
  local spec = redis.call('HGET', schedule, 'spec')
  if not spec or redis.call('HGET', schedule, 'paused') == '1' then
    redis.call('ZREM', due, name)
  else
    local token = tostring(redis.call('INCR', counter))
    redis.call('HSET', schedule, 'claim', token)
    redis.call('ZADD', due, now + hold, name)
    claimed[#claimed + 1] = {name, redis.call('HGET', schedule, 'next'), spec, token}
  end
end
return claimed
