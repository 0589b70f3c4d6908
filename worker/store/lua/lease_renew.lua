-- A worker renews the leases of the deliveries it holds (running, prefetched
-- or waiting for their eta). KEYS 1: kombu's unacked index, 2: the leases,
-- 3: their lengths, 4: when any worker last renewed, 5: when renewals last
-- resumed after a pause of them all.
-- ARGV 1: the holder's lease in seconds, 2..: the delivery tags it holds.
-- Only entries still there are renewed: a lapsed one was handed to another
-- worker. kombu's score is kept fresh too, so a worker of a release before
-- leases never takes a long job back either. Returns the tags that were
-- gone, so the worker learns its lease on them ended. A gap of more than
-- half a lease since anyone renewed means every worker was cut off (Redis
-- restarted, a partition): the settle time restarts (see lease_lapsed.lua).
local index, leases, lengths, renewed, settled = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local lease = tonumber(ARGV[1])

local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local last = tonumber(redis.call('GET', renewed) or '0')
if now - last > lease / 2 then redis.call('SET', settled, now) end
redis.call('SET', renewed, now)
local gone = {}
for i = 2, #ARGV do
  local tag = ARGV[i]
  if redis.call('ZSCORE', index, tag) then
    redis.call('ZADD', index, now, tag)
    redis.call('ZADD', leases, now + lease, tag)
    redis.call('HSET', lengths, tag, lease)
  else
    redis.call('ZREM', leases, tag)
    redis.call('HDEL', lengths, tag)
    gone[#gone + 1] = tag
  end
end
return gone
