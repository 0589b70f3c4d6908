-- KEYS 1: the job record, 2..n+1: the concurrency sets, then (with a rate
-- limit) the rate key, its reservations and the log of its recent starts.
-- ARGV 1: job id, 2: lease seconds, 3: n, 4..n+3: the caps, n+4: the rate's
-- interval ('' for none), n+5: the reservation horizon, n+6: the record's
-- notice while it waits for its turn, n+7..2n+6: its notice while limit i is
-- full, 2n+7 and 2n+8: the rate's count and period (with a rate limit).
-- Returns {'run'} (slots taken), {'proceed'} (the job has ended: take nothing
-- and let START say so), {'full', i, waits} (concurrency limit i is full; the
-- job has now waited waits times), {'rate', seconds} (come back then).

local state = redis.call('HGET', KEYS[1], 'state')
if state and state ~= 'queued' and state ~= 'retrying' and state ~= 'running'
   and state ~= 'input_required' then
  return {'proceed'}
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local job, lease, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, n do
  local set = KEYS[1 + i]
  redis.call('ZREMRANGEBYSCORE', set, '-inf', now)  -- leases of dead workers
  if not redis.call('ZSCORE', set, job) and redis.call('ZCARD', set) >= tonumber(ARGV[3 + i]) then
    local waits = 0
    if state then
      waits = redis.call('HINCRBY', KEYS[1], 'limit_waits', 1)
      redis.call('HSET', KEYS[1], 'notice', ARGV[n + 6 + i])
    end
    return {'full', i, waits}
  end
end
local interval = ARGV[n + 4]
if interval ~= '' then
  interval = tonumber(interval)
  local rate, held, reach = KEYS[n + 2], KEYS[n + 3], tonumber(ARGV[n + 5])
  -- The starts of the last period, by Redis time: however late booked jobs
  -- arrive, no period ever holds more than count of them.
  local starts, count, period = KEYS[n + 4], tonumber(ARGV[2 * n + 7]), tonumber(ARGV[2 * n + 8])
  redis.call('ZREMRANGEBYSCORE', starts, '-inf', now - period)
  local function until_room()
    if redis.call('ZCARD', starts) < count then return nil end
    local oldest = redis.call('ZRANGE', starts, 0, 0, 'WITHSCORES')
    return tostring(math.max(0.001, tonumber(oldest[2]) + period - now))
  end
  redis.call('ZREMRANGEBYSCORE', held, '-inf', now - reach)
  local booked = redis.call('ZSCORE', held, job)
  if booked and tonumber(booked) > now + 0.001 then
    return {'rate', tostring(tonumber(booked) - now)}  -- early: its time is still to come
  elseif booked then
    local wait = until_room()
    if wait then return {'rate', wait} end  -- late arrivals bunched up: keep the booking
    redis.call('ZREM', held, job)
  else
    local start = math.max(tonumber(redis.call('GET', rate) or '0'), now)
    if start - now > reach then
      if state then redis.call('HSET', KEYS[1], 'notice', ARGV[n + 6]) end
      return {'rate', tostring(reach)}  -- too far ahead to book: ask again then
    end
    if start <= now then
      local wait = until_room()
      if wait then return {'rate', wait} end
    end
    redis.call('SET', rate, tostring(start + interval), 'PX',
               math.ceil((start + interval - now) * 1000) + 1000)
    if start > now then
      redis.call('ZADD', held, start, job)
      redis.call('PEXPIRE', held, math.ceil(reach * 2000) + 1000)
      if state then redis.call('HSET', KEYS[1], 'notice', ARGV[n + 6]) end
      return {'rate', tostring(start - now)}
    end
  end
  redis.call('ZADD', starts, now, job .. ':' .. tostring(now))
  redis.call('PEXPIRE', starts, math.ceil(period * 1000) + 1000)
end
for i = 1, n do
  redis.call('ZADD', KEYS[1 + i], now + lease, job)
  redis.call('PEXPIRE', KEYS[1 + i], math.ceil(lease * 2000) + 1000)
end
if state then
  redis.call('HDEL', KEYS[1], 'limit_waits')
  redis.call('HSET', KEYS[1], 'admitted_at', tostring(now))
end
return {'run'}
